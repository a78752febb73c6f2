"""One sign-in per kernel, which every login panel shows: the session's state.

A kernel has one `Session` (per IPython shell). It holds the signed-in `Client`, where it came from, and
whether it is remembered; panels are views of it: signing in or out from any panel, or `speckle.logout()` in
a cell, updates all of them. What reaches past the kernel is done by parts made with the session
(`_sessions.session_for`), each given the session when it is made:

    _link_logins      the link to the Jupyter server: the panels' mailbox, following and claiming a login
                      finished by the extension, renewals through the extension
    _kernel_login     "Log in with Speckle" the kernel finishes itself, where no extension runs
    _browser_renewal  a renewal asked of one panel view, where the kernel has no link

Making a session does no I/O and starts no thread. Messages can arrive on several threads and in any order:
every change happens under the one lock, nothing here prints or raises into a handler, and a failed sign-in
never replaces a working one.
"""

from __future__ import annotations

import contextlib
import functools
import keyword
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from . import _credentials as credentials
from . import _public_app as public_app
from . import _registry as registry
from . import _sources as sources
from ._client import Client
from ._dotenv import dotenv_notices, remember_in_dotenv
from ._errors import NotSignedIn, RefreshRejected, SpeckleAuthError, SsoSessionExpired
from ._protocol import TokenPair
from ._public_app import PUBLIC_APP_ID
from ._rotation import rotation_notice

__all__ = ["FLOW_ENDED", "Part", "Session", "SignedIn", "View", "check_variable_name"]

CONNECTOR_APP_NOTE = (
    "Signed in through Speckle's connector app, whose tokens can also write your projects and invite people: "
    "for least privilege, use a read-only personal access token or an app registered for this notebook."
)
# How a login the session followed ended, when it ended without a sign-in.
FLOW_ENDED = {
    "denied": "You chose not to give access: nothing changed.",
    "expired": "The sign-in expired: try again.",
    "failed": "The sign-in failed: try again.",
    "superseded": "A newer sign-in started in this browser replaced this one.",
}
NO_RENEWAL = "This sign-in needs renewing, and nothing in this kernel can renew it: log in again."


class View(Protocol):
    """What the session and its parts need of a panel."""

    panel_id: str
    variable: str

    def session_changed(self, message: str) -> None: ...

    def say(self, *, message: str = "", error: str = "") -> None: ...

    def flow_ended(self, flow_id: str, error: str) -> None: ...

    def send(self, content: dict[str, Any], buffers: Any = None) -> None: ...

    def handle(self, content: Any) -> None: ...

    def sign_in_claimed(self, server: str, pair: TokenPair, app_id: str | None) -> str:
        """Sign in with a pair a login brought; what went wrong ("" when signed in)."""


class Part(Protocol):
    """A part of the session (a login it follows): told when someone signed in (under the session's lock: it
    must not wait for another thread there) or pressed Cancel (outside it)."""

    def stop(self, *, cancelled: bool) -> None: ...


@dataclass(frozen=True)
class SignedIn:
    """What `Session.sign_in` did: signed in (no `error`), or why not, with the requested scopes the token
    lacks (`missing`, maybe none)."""

    error: str = ""
    missing: tuple[str, ...] = ()


class Session:
    """The kernel's sign-in. Made by `_sessions.session_for(shell)`; panels register with `add_view`."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.client: Client | None = None
        self.source = ""
        self.origin = ""  # where the credential came from, for people ("SPECKLE_TOKEN from the environment")
        self.held: tuple[str, ...] | None = None
        self.remembered = False
        self.told_no_keyring = False
        self.kept: tuple[str, TokenPair] | None = None  # a token the person brought, kept valid by Log out
        self.cancels = 0  # how many times someone pressed Cancel: ends a waiting login()
        self.parts: list[Part] = []
        # renews a pair of a server whose app this kernel does not hold (through the link or a browser view)
        self.renewer: Callable[[str, TokenPair], TokenPair] | None = None
        self.watchers: list[Callable[[str], None]] = []  # told every change, as the views are (the status bar)
        self._views: list[weakref.ref[Any]] = []
        self._ready: dict[str, str | None] = {}  # panel id -> the id of its latest view that said "ready"

    # --- views ----------------------------------------------------------------------------------------------

    def add_view(self, view: View) -> None:
        with self.lock:
            self._views = [ref for ref in self._views if ref() is not None]
            self._views.append(weakref.ref(view))

    def remove_view(self, view: View) -> None:
        with self.lock:
            self._views = [ref for ref in self._views if ref() not in (None, view)]
            self._ready.pop(view.panel_id, None)

    def views(self) -> list[Any]:
        with self.lock:
            return [v for v in (ref() for ref in self._views) if v is not None]

    def view_ready(self, view: View, view_id: str | None) -> None:
        with self.lock:
            self._ready.pop(view.panel_id, None)
            self._ready[view.panel_id] = view_id  # the latest last: renewals ask it
            self.changed.notify_all()

    def seen(self, view: View) -> bool:
        with self.lock:
            return view.panel_id in self._ready

    def ready_views(self) -> list[tuple[Any, str | None]]:
        """The views that said they are shown, with their latest browser view's id: the latest last."""
        with self.lock:
            views = {v.panel_id: v for v in self.views()}
            return [(views[p], view_id) for p, view_id in self._ready.items() if p in views]

    def broadcast(self, message: str) -> None:
        for view in self.views():
            with contextlib.suppress(Exception):
                view.session_changed(message)
        for watcher in list(self.watchers):
            with contextlib.suppress(Exception):
                watcher(message)

    def tell_all_error(self, text: str) -> None:
        for view in self.views():
            with contextlib.suppress(Exception):
                view.say(error=text)

    # --- signing in -----------------------------------------------------------------------------------------

    def sign_in_quietly(self, server: str | None, wanted: tuple[str, ...]) -> str:
        """The environment, a remembered sign-in, a single desktop account; returns a note for people (why
        none worked) when nothing signed in."""
        try:
            found = sources.sign_in(server, scopes=wanted, fetch_scopes=True, make_client=lambda c: (
                sources.hub_client(c) if c.source == "hub" else self.new_client(c.server, c.pair)))
        except NotSignedIn as err:
            return f"Not signed in yet. {err.reason}" if err.reason else ""
        notices: list[str] = []
        path = found.candidate.path
        if found.candidate.source == "dotenv" and path is not None:
            notices = _quietly(lambda: dotenv_notices(path), [])
        self.commit(found.client, found.candidate.source, found.scopes.held, store=False,
                    origin=found.candidate.description, notices=notices)
        return ""

    def sign_in(
        self,
        server: str,
        pair: TokenPair,
        source: str,
        wanted: tuple[str, ...],
        *,
        store: bool,
        app_id: str | None = None,
    ) -> SignedIn:
        """Validate `pair` for `server`; on success inject the client. A refusal keeps any sign-in and says why,
        naming the requested scopes the token lacks."""
        with self.lock:
            try:
                client = self.new_client(server, pair, app_id)
            except SpeckleAuthError as err:
                return SignedIn(self.still_signed_in(_token_message(err, server, source)))
            check = sources.scope_check(client, wanted)
            if check.missing:
                if source == "oauth":  # made for this sign-in and now held by nobody: take it back
                    with contextlib.suppress(SpeckleAuthError):
                        client.logout(revoke=True)
                else:
                    client.close()
                return SignedIn(self.still_signed_in(check.missing_message()), check.missing)
            origin = CONNECTOR_APP_NOTE if app_id == PUBLIC_APP_ID else ""
            self.commit(client, source, check.held, store=store, origin=origin)
            return SignedIn()

    def new_client(self, server: str, pair: TokenPair, app_id: str | None = None) -> Client:
        made: list[Client] = []

        def on_refresh(new: TokenPair) -> None:
            if made:
                self._pair_refreshed(made[0], new)

        # The kernel renews by itself where it holds the app of this very server (the Client does) or the
        # public app (whose secret is public); else through the Jupyter server or a browser view (`renewer`).
        refresher: Callable[[TokenPair], TokenPair] | None = None
        if app_id == PUBLIC_APP_ID:
            refresher = lambda old: public_app.refresh(server, old)  # noqa: E731
        elif credentials.app_from_environment(server) is None:
            refresher = lambda old: self.renew(server, old)  # noqa: E731
        client = Client(
            server, pair.token, pair.refresh_token, refresher=refresher, on_refresh=on_refresh, app_id=app_id
        )
        made.append(client)
        return client

    def commit(
        self,
        client: Client,
        source: str,
        held: tuple[str, ...] | None,
        *,
        store: bool,
        origin: str = "",
        notices: list[str] | None = None,
    ) -> None:
        with self.lock:
            old, self.client, self.kept = self.client, client, None
            client.made_here = client.made_here and source != "desktop"  # Speckle's desktop apps made that one
            registry.register(client)
            client.on_logout(self._client_logged_out)
            client.on_sso_expired(functools.partial(_show_sso_expired, self))
            self.source, self.held, self.origin = source, held, origin
            notes: list[str] = []
            remembered = False
            if store or source == "keyring":  # a remembered pair may have been renewed while it was checked
                try:
                    credentials.remember(client.url, client.user.id, client.token_pair)
                    remembered = True
                except credentials.KeyringUnavailable as err:
                    notes.append("Signed in for this session only." if self.told_no_keyring else err.message)
                    self.told_no_keyring = True
            self.remembered = remembered
            notes.insert(0, _where_from(source, origin))
            notes.extend(notices or [])
            if source != "oauth":  # a personal access token: remind when it is due for rotation
                notes.append(_quietly(lambda: rotation_notice(client), None) or "")
            self._inject(client)
            for part in self.parts:
                part.stop(cancelled=False)
            self.changed.notify_all()
            if old is not None and old is not client:
                registry.unregister(old)
                old.close()  # replaced by a new sign-in: not revoked (it may be a token used elsewhere)
        self.broadcast(" ".join(n for n in notes if n))

    def _inject(self, client: Client) -> None:
        ns = getattr(self.shell, "user_ns", None)
        if ns is None:
            return
        for view in self.views():
            ns[view.variable] = client

    def add_variable(self, view: View) -> None:
        """A new panel's variable gets the client this kernel is already signed in with."""
        with self.lock:
            ns = getattr(self.shell, "user_ns", None)
            if self.client is not None and ns is not None:
                ns[view.variable] = self.client

    def still_signed_in(self, text: str) -> str:
        with self.lock:
            if self.client is not None:
                return f"{text} You are still signed in as {self.client.user.name or 'before'}."
            return text

    def renew(self, server: str, pair: TokenPair) -> TokenPair:
        if self.renewer is None:
            raise RefreshRejected(NO_RENEWAL, code="refresh_unavailable")
        return self.renewer(server, pair)

    # --- logging out (from a panel: `_logout`) ----------------------------------------------------------------

    def _client_logged_out(self, client: Client, quiet: bool = False) -> None:
        """`Client.logout()` was called (from a panel or a cell): forget the sign-in everywhere."""
        with self.lock:
            if client is not self.client:
                return
            self.client = None
            self.remembered = False
            self.source, self.origin, self.held = "", "", None
            registry.unregister(client)
            ns = getattr(self.shell, "user_ns", None)
            if ns is not None:
                for name in [k for k, v in ns.items() if v is client]:
                    del ns[name]
            with contextlib.suppress(Exception):
                credentials.forget(client.url, client.user.id)
            self.changed.notify_all()
        if not quiet:
            self.broadcast("Logged out.")

    # --- remember me ----------------------------------------------------------------------------------------

    def set_remembered(self, wanted: bool) -> tuple[str, str]:
        """Store or forget the sign-in now; returns (message, error) for the panel that asked."""
        with self.lock:
            client = self.client
            if client is None or wanted == self.remembered:
                return "", ""
            if wanted:
                try:
                    credentials.remember(client.url, client.user.id, client.token_pair)
                except credentials.KeyringUnavailable as err:
                    self.told_no_keyring = True
                    return "", err.message
                self.remembered = True
                message = "This sign-in is remembered on this machine."
            else:
                credentials.forget(client.url, client.user.id)
                self.remembered = False
                message = "This sign-in is no longer remembered on this machine."
        self.broadcast(message)
        return message, ""

    def remember_in_file(self) -> tuple[str, str]:
        """Where no keyring works, and only when asked: keep the sign-in in a `.env` file readable by its owner
        alone (0600), which git ignores. Returns (message, error) for the panel that asked."""
        with self.lock:
            client = self.client
            if client is None:
                return "", "Sign in first, then choose where to keep the sign-in."
            try:
                path = remember_in_dotenv(client.url, client.token_pair.token)
            except (OSError, SpeckleAuthError) as err:
                text = err.message if isinstance(err, SpeckleAuthError) else type(err).__name__
                return "", f"The sign-in could not be saved to a .env file ({text}): it stays for this session."
        return (f"Saved to {path}, readable only by you and ignored by git; the next login() signs in from it. "
                "Delete the file to forget it."), ""

    def _pair_refreshed(self, client: Client, new: TokenPair) -> None:
        """The client renewed its pair: keep the remembered copy current."""
        with self.lock:
            if client is self.client and self.remembered:
                with contextlib.suppress(Exception):
                    credentials.remember(client.url, client.user.id, new)

    # --- cancelling and waiting -----------------------------------------------------------------------------

    def cancel(self) -> None:
        with self.lock:
            self.cancels += 1
            self.changed.notify_all()
        for part in self.parts:
            part.stop(cancelled=True)


def check_variable_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        shown = name[:40] if isinstance(name, str) else type(name).__name__
        raise ValueError(f"{shown!r} cannot be a variable name: use a Python identifier such as 'speckle'.")


def _where_from(source: str, origin: str) -> str:
    if source == "environment":
        return "Signed in with SPECKLE_TOKEN from the environment."
    if source == "hub":
        return "Signed in with your hub login's Speckle account."
    if source == "keyring":
        return "Signed in with the sign-in remembered on this machine."
    if source == "desktop":
        return "Signed in with a Speckle desktop account."
    if source == "token":
        return "Signed in with a personal access token: Log out forgets it here and keeps it valid on Speckle."
    if origin and source not in ("token", "oauth"):
        return f"Signed in with {origin}."
    if source == "oauth" and origin:
        return origin
    return ""


def _token_message(err: SpeckleAuthError, server: str, source: str) -> str:
    """What a refused personal access token means, with the server's token page to fix it."""
    if source == "token" and err.code == "invalid_token":
        return (
            f"This token was not accepted by {server}: was it made on another server, revoked or expired? "
            f"Make a new one at {server}/settings (Developer settings, Access tokens)."
        )
    return err.message


def _quietly(make: Callable[[], Any], fallback: Any) -> Any:
    """A note that is nice to have: a failure to make it (git missing, a token that may not read its age)
    never stands in the way of a sign-in."""
    try:
        return make()
    except Exception:  # noqa: BLE001 - see above
        return fallback


def _show_sso_expired(session: Session, err: SsoSessionExpired) -> None:
    """A call met a workspace whose SSO session lapsed: every view shows the address that renews it."""
    for view in session.views():
        view.say(error=err.message)
