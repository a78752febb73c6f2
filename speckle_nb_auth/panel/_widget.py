"""The login panel: synced traits (never a secret) and the kernel half that turns a credential into a Client.

Messages from the browser can arrive on another thread while a cell runs (ipykernel 7 handles comms on a
subshell), in any order: every state change happens under one lock, handlers never print and never raise, and
a failed sign-in never replaces a working one. Tokens travel only in one-shot messages (`_messages`), never in
the synced state, which a saved notebook keeps.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from .. import _credentials as credentials
from .. import _login as registry
from .. import _protocol as protocol
from .. import _sources as sources
from .._client import Client
from .._desktop import DesktopAccount, desktop_accounts
from .._errors import NotSignedIn, RefreshRejected, SpeckleAuthError
from .._protocol import TokenPair
from . import _messages as msgs

__all__ = ["LoginPanel"]

_HERE = Path(__file__).parent
_log = logging.getLogger("speckle_nb_auth.panel")

GENERIC_ERROR = (
    "Something unexpected went wrong, and nothing was changed. Try again; if it keeps happening, restart the "
    "kernel and run login() again."
)
_NO_PANEL = (
    "This sign-in needs renewing, which goes through the login panel in the browser, and no panel was on "
    "screen to do it: log in again with the panel (run login() if none is shown)."
)
_NO_ANSWER = (
    "This sign-in needs renewing through the login panel, which did not answer in time: keep the panel shown "
    "(run login() again), or log in again."
)


@dataclass
class _Pending:
    """A refresh request sent to the browser, waiting for its answer."""

    server: str
    event: threading.Event = field(default_factory=threading.Event)
    pair: TokenPair | None = field(default=None, repr=False)
    error: str | None = None


class LoginPanel(anywidget.AnyWidget):
    """Sign in to Speckle from a notebook; the signed-in `Client` appears in the namespace as `variable`.

    Made by `speckle_nb_auth.login()`. Only non-secret state is synced (and so saved with a notebook).
    """

    _esm = _HERE / "panel.js"
    _css = _HERE / "panel.css"

    status = t.Unicode("signed_out", help="signed_out | signed_in").tag(sync=True)
    busy = t.Bool(False, help="the kernel is checking a credential").tag(sync=True)
    message = t.Unicode("", help="what happened, for people").tag(sync=True)
    error = t.Unicode("", help="what went wrong and what to do, for people").tag(sync=True)
    server_url = t.Unicode("", help="the signed-in server, or the one asked for").tag(sync=True)
    server_name = t.Unicode("").tag(sync=True)
    user_name = t.Unicode("").tag(sync=True)
    user_email = t.Unicode("").tag(sync=True)
    user_avatar = t.Unicode("").tag(sync=True)
    variable = t.Unicode("speckle", help="the notebook variable holding the Client").tag(sync=True)
    source = t.Unicode("", help="token | oauth | desktop | environment | keyring").tag(sync=True)
    remember = t.Bool(False, help="keep the sign-in in the OS keyring").tag(sync=True)
    desktop_accounts = t.List(t.Dict(), help="[{label, server_url}] of the desktop accounts").tag(sync=True)
    requested_scopes = t.List(t.Unicode()).tag(sync=True)
    scopes = t.List(t.Dict(), help="[{name, write, unrequested}] the token holds, where known").tag(sync=True)
    missing_scopes = t.List(t.Unicode()).tag(sync=True)
    kernel_refresh = t.Bool(False, help="the kernel can refresh by itself (app credentials in its env)").tag(
        sync=True
    )

    #: How long a refresh waits for the browser's answer, in seconds.
    refresh_timeout = 15.0

    def __init__(
        self,
        server: str | None = None,
        name: str = "speckle",
        remember: bool = False,
        scopes: Iterable[str] | str | None = None,
        *,
        shell: Any = None,
        autostart: bool = True,
        **kwargs: Any,
    ) -> None:
        registry.check_variable_name(name)
        url = protocol.normalize_server_url(server) if server else ""
        wanted = sources.normalize_scopes(scopes)
        super().__init__(
            variable=name,
            server_url=url,
            remember=bool(remember),
            requested_scopes=list(wanted),
            kernel_refresh=_kernel_can_refresh(),
            **kwargs,
        )
        self._shell = shell if shell is not None else _current_shell()
        self._wanted = wanted
        self._fixed_server = url or None
        self._lock = threading.RLock()
        self._client: Client | None = None
        self._remembered = False
        self._desktop: list[DesktopAccount] = []
        self._pending: dict[str, _Pending] = {}
        self._late: dict[str, str] = {}  # timed-out refresh requests: id -> server, to revoke late answers
        self._pending_lock = threading.Lock()
        self._view_ready = threading.Event()
        self._local = threading.local()
        self._told_no_keyring = False
        self._shown_in: int | None = None
        self.on_msg(self._handle_message)
        self.observe(self._on_remember_toggled, names=["remember"])
        with self._guard("Could not look for sign-ins on this machine"):
            self._list_desktop_accounts()
            if autostart:
                self._sign_in_quietly()

    # --- what users and tests see ---------------------------------------------------------------------------

    @property
    def client(self) -> Client | None:
        """The signed-in client, or None."""
        return self._client

    def show(self) -> None:
        """Display the panel (once per cell: `login()` as a cell's last line is not shown twice)."""
        from IPython.display import display

        display(self)
        self._shown_in = self._execution_count()

    def _ipython_display_(self) -> None:
        count = self._execution_count()
        if self._shown_in is not None and self._shown_in == count:
            self._shown_in = None  # the cell's own display of `login()`'s return value: shown already
            return
        self._shown_in = None
        from IPython.display import display

        bundle = self._repr_mimebundle_()
        if bundle is not None:
            data, metadata = bundle
            display(data, metadata=metadata, raw=True)

    def __repr__(self) -> str:
        if self._client is None:
            return f"<speckle_nb_auth.LoginPanel {self.status}>"
        return (
            f"<speckle_nb_auth.LoginPanel {self.status} user={self.user_name!r} server={self.server_url!r} "
            f"variable={self.variable!r}>"
        )

    # --- the browser's messages -----------------------------------------------------------------------------

    def _handle_message(self, widget: Any, content: Any, buffers: Any) -> None:
        """anywidget's `on_msg` callback. Never raises, never prints."""
        self._local.in_handler = True
        try:
            with self._guard():
                try:
                    message = msgs.parse(content)
                except msgs.BadMessage as err:
                    self._fail(err.message)
                    return
                if message is not None:
                    self._dispatch(message)
        finally:
            self._local.in_handler = False

    def _dispatch(self, message: msgs.Message) -> None:
        if isinstance(message, msgs.Ready):
            self._view_ready.set()
        elif isinstance(message, msgs.Pat):
            server = message.server or self.server_url or sources.default_server()
            self._sign_in(server, TokenPair(message.token), "token", store=None)
        elif isinstance(message, msgs.OAuth):
            self._sign_in(message.server, message.pair, "oauth", store=None, app_id=message.app_id)
        elif isinstance(message, msgs.Desktop):
            with self._lock:
                account = self._desktop[message.index] if message.index < len(self._desktop) else None
            if account is None:
                self._fail("That desktop account is no longer listed: run login() again to refresh the list.")
                return
            self._sign_in(account.server_url, account.pair, "desktop", store=None)
        elif isinstance(message, msgs.Logout):
            self._logout()
        elif isinstance(message, msgs.Cancel):
            with self._lock:
                if self._client is None:
                    self._set(message="Sign-in cancelled.", error="")
        elif isinstance(message, (msgs.Refreshed, msgs.RefreshFailed)):
            self._refresh_answered(message)

    # --- signing in -----------------------------------------------------------------------------------------

    def _sign_in_quietly(self) -> None:
        """At construction: the environment, a remembered sign-in, a single desktop account."""
        try:
            found = sources.sign_in(
                self._fixed_server,
                scopes=self._wanted,
                make_client=lambda c: self._new_client(c.server, c.pair),
                fetch_scopes=True,
            )
        except NotSignedIn as err:
            reason = err.reason
            if reason:  # e.g. SPECKLE_TOKEN was revoked: worth knowing before signing in another way
                self._set(message=f"Not signed in yet. {reason}")
            return
        store = self.remember and found.candidate.source == "desktop"
        self._commit(found.client, found.candidate.source, found.scopes, store=store)

    def _sign_in(
        self, server: str, pair: TokenPair, source: str, *, store: bool | None, app_id: str | None = None
    ) -> None:
        """Validate `pair` for `server`; on success inject the client, else say why (keeping any sign-in)."""
        with self._lock:
            self._set(busy=True, error="", message=f"Checking the sign-in with {server}…")
            try:
                try:
                    client = self._new_client(server, pair, app_id)
                except SpeckleAuthError as err:
                    self._fail(err.message)
                    return
                check = sources.check_scopes(self._wanted, sources.token_scopes(client))
                if check.missing:
                    if source == "oauth":  # made for this sign-in and now held by nobody: take it back
                        with contextlib.suppress(SpeckleAuthError):
                            client.logout(revoke=True)
                    else:
                        client.close()
                    self._set(missing_scopes=list(check.missing))
                    self._fail(check.missing_message())
                    return
                self._commit(client, source, check, store=self.remember if store is None else store)
            finally:
                self._set(busy=False)

    def _new_client(self, server: str, pair: TokenPair, app_id: str | None = None) -> Client:
        made: list[Client] = []

        def on_refresh(new: TokenPair) -> None:
            if made:
                self._pair_refreshed(made[0], new)

        # The kernel refreshes by itself where it holds the app of this very server; else the browser asks.
        direct = credentials.app_from_environment(server) is not None
        refresher = None if direct else (lambda old: self._refresh_via_browser(server, old))
        client = Client(
            server, pair.token, pair.refresh_token, refresher=refresher, on_refresh=on_refresh, app_id=app_id
        )
        made.append(client)
        return client

    def _commit(self, client: Client, source: str, check: sources.ScopeCheck, *, store: bool) -> None:
        with self._lock:
            old, self._client = self._client, client
            registry.register(client)
            client.on_logout(self._client_logged_out)
            if self._shell is not None:
                self._shell.user_ns[self.variable] = client
            notes = []
            remembered = False
            if store or source == "keyring":  # a remembered pair may have been renewed while it was checked
                try:
                    credentials.remember(client.url, client.user.id, client.token_pair)
                    remembered = True
                except credentials.KeyringUnavailable as err:
                    told = self._told_no_keyring
                    notes.append("Signed in for this session only." if told else err.message)
                    self._told_no_keyring = True
            self._remembered = remembered
            if source == "environment":
                notes.insert(0, "Signed in with SPECKLE_TOKEN from the environment.")
            elif source == "keyring":
                notes.insert(0, "Signed in with the sign-in remembered on this machine.")
            elif source == "desktop":
                notes.insert(0, "Signed in with a Speckle desktop account.")
            if check.describe():
                notes.append(check.describe())
            self._set(
                status="signed_in",
                source=source,
                server_url=client.url,
                server_name=client.server.name,
                user_name=client.user.name,
                user_email=client.user.email or "",
                user_avatar=_safe_avatar(client.user.avatar),
                scopes=check.display(),
                missing_scopes=[],
                error="",
                message=" ".join(notes),
                internal_remember=remembered,
            )
            if old is not None and old is not client:
                registry.unregister(old)
                old.close()  # replaced by a new sign-in: not revoked (it may be a token used elsewhere)

    # --- logging out ----------------------------------------------------------------------------------------

    def _logout(self) -> None:
        with self._lock:
            client = self._client
            if client is None:
                self._set(error="", message="Not signed in.")
                return
            desktop = self.source == "desktop"
            shared = self.source == "environment"
            problem = None
            try:
                # A desktop account's token belongs to Speckle's desktop apps, SPECKLE_TOKEN to whatever set
                # it (often automation too): neither is revoked from here.
                client.logout(revoke=not (desktop or shared))
            except SpeckleAuthError as err:
                problem = err.message
            self._client_logged_out(client)
            if problem:
                self._set(error=f"Logged out here, but the server could not be told to revoke the token: "
                          f"{problem}")
            elif desktop:
                self._set(message="Logged out in this notebook; the desktop account stays signed in for "
                          "Speckle's desktop apps.")
            elif shared:
                self._set(message="Logged out in this notebook. SPECKLE_TOKEN was not revoked (it may serve "
                          "other jobs); unset it to stop signing in with it, or revoke it in Speckle's settings.")
            else:
                self._set(message="Logged out: the token was revoked and forgotten.")

    def _client_logged_out(self, client: Client) -> None:
        """`Client.logout()` was called (from the panel or a cell): forget the sign-in everywhere."""
        with self._guard(), self._lock:
            if client is not self._client:
                return
            self._client = None
            self._remembered = False
            registry.unregister(client)
            ns = getattr(self._shell, "user_ns", None)
            if ns is not None and ns.get(self.variable) is client:
                del ns[self.variable]
            credentials.forget(client.url, client.user.id)
            self._set(
                status="signed_out",
                source="",
                server_name="",
                user_name="",
                user_email="",
                user_avatar="",
                scopes=[],
                missing_scopes=[],
                error="",
                message="Logged out.",
            )

    # --- remember me ----------------------------------------------------------------------------------------

    def _on_remember_toggled(self, change: dict[str, Any]) -> None:
        """The box was ticked or cleared while signed in: store or forget the sign-in now."""
        if getattr(self._local, "internal", False):
            return
        with self._guard(), self._lock:
            client = self._client
            if client is None or change["new"] == self._remembered:
                return
            if change["new"]:
                try:
                    credentials.remember(client.url, client.user.id, client.token_pair)
                    self._remembered = True
                    self._set(error="", message="This sign-in is remembered on this machine.")
                except credentials.KeyringUnavailable as err:
                    self._told_no_keyring = True
                    self._set(error=err.message, internal_remember=False)
            else:
                credentials.forget(client.url, client.user.id)
                self._remembered = False
                self._set(error="", message="This sign-in is no longer remembered on this machine.")

    # --- refreshing through the browser ---------------------------------------------------------------------

    def _refresh_via_browser(self, server: str, pair: TokenPair) -> TokenPair:
        """The `Client`'s refresher: ask the browser half, which holds the Jupyter session, to renew the pair
        through the server extension; wait for its answer."""
        if getattr(self._local, "in_handler", False) or not self._view_ready.is_set() or self.comm is None:
            # Inside a message handler the answer could not arrive while we wait; with no view, nobody answers.
            raise RefreshRejected(_NO_PANEL, code="refresh_unavailable")
        rid = secrets.token_urlsafe(18)
        pending = _Pending(server)
        with self._pending_lock:
            self._pending[rid] = pending
        try:
            self.send({"type": "refresh", "id": rid, "server_url": server,
                       "refresh_token": pair.refresh_token})
            answered = pending.event.wait(self.refresh_timeout)
        finally:
            with self._pending_lock:
                self._pending.pop(rid, None)
                if not pending.event.is_set():
                    self._late[rid] = server
                    while len(self._late) > 32:
                        self._late.pop(next(iter(self._late)))
        if not answered:
            self._say_error(_NO_ANSWER)
            raise RefreshRejected(_NO_ANSWER, code="refresh_timeout")
        if pending.pair is None:
            text = pending.error or "The sign-in could not be renewed: log in again."
            self._say_error(text)
            raise RefreshRejected(text)
        return pending.pair

    def _refresh_answered(self, answer: msgs.Refreshed | msgs.RefreshFailed) -> None:
        with self._pending_lock:
            pending = self._pending.get(answer.id)
            if pending is not None and not pending.event.is_set():
                if isinstance(answer, msgs.Refreshed):
                    pending.pair = answer.pair
                else:
                    pending.error = answer.message or None
                pending.event.set()
                return
            late = self._late.pop(answer.id, None)
        if late is not None and isinstance(answer, msgs.Refreshed):
            _revoke(late, answer.pair)  # nobody waits for this pair any more: do not leave it valid

    def _pair_refreshed(self, client: Client, new: TokenPair) -> None:
        """The client renewed its pair: keep the remembered copy current."""
        with self._guard(), self._lock:
            if client is self._client and self._remembered:
                try:
                    credentials.remember(client.url, client.user.id, new)
                except credentials.KeyringUnavailable:
                    pass

    # --- helpers --------------------------------------------------------------------------------------------

    def _list_desktop_accounts(self) -> None:
        accounts = desktop_accounts(self._fixed_server)
        with self._lock:
            self._desktop = accounts
            self._set(desktop_accounts=[{"label": a.label, "server_url": a.server_url} for a in accounts])

    def _fail(self, text: str) -> None:
        with self._lock:
            if self._client is not None:
                text = f"{text} You are still signed in as {self.user_name or 'before'}."
            self._set(error=text, message="")

    def _set(self, internal_remember: bool | None = None, **values: Any) -> None:
        """Change synced traits together (one update message), under the lock."""
        with self._lock, self.hold_sync():
            for key, value in values.items():
                setattr(self, key, value)
            if internal_remember is not None:
                self._local.internal = True
                try:
                    self.remember = internal_remember
                finally:
                    self._local.internal = False

    @contextmanager
    def _guard(self, what: str | None = None) -> Any:
        """Turn any failure into a panel message: typed errors say what to do, anything else is generic."""
        try:
            yield
        except SpeckleAuthError as err:
            self._safe_fail(err.message)
        except Exception as err:  # noqa: BLE001 - a handler must never raise into the kernel
            _log.debug("login panel: unexpected %s", type(err).__name__)
            self._safe_fail(f"{what}. {GENERIC_ERROR}" if what else GENERIC_ERROR)

    def _say_error(self, text: str) -> None:
        with self._guard():
            self._set(error=text, message="")

    def _safe_fail(self, text: str) -> None:
        try:
            self._fail(text)
        except Exception:  # noqa: BLE001, S110 - the panel itself is broken: nothing more to tell
            pass

    def _execution_count(self) -> int | None:
        return getattr(self._shell, "execution_count", None)


def _current_shell() -> Any:
    import sys

    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _kernel_can_refresh() -> bool:
    return bool(os.environ.get("SPECKLE_APP_ID") and os.environ.get("SPECKLE_APP_SECRET"))


def _safe_avatar(value: str | None) -> str:
    """Avatars are data: URLs or web addresses; anything else is dropped."""
    if not value or len(value) > 100_000:
        return ""
    lowered = value[:16].lower()
    return value if lowered.startswith(("data:image/", "https://", "http://")) else ""


def _revoke(server: str, pair: TokenPair) -> None:
    import httpx

    from .._transport import call, ssl_context

    try:
        with httpx.Client(timeout=5.0, verify=ssl_context()) as http:
            call(http, protocol.logout(server, pair.token, pair.refresh_token))
    except Exception:  # noqa: BLE001, S110 - best effort
        pass

