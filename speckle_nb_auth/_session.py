"""One sign-in per kernel, which every login panel shows.

A kernel has one `Session` (per IPython shell). It holds the signed-in `Client`, where it came from, and
whether it is remembered; panels are views of it: signing in or out from any panel, or `speckle.logout()` in
a cell, updates all of them. The session also owns what reaches past one panel:

- the link to the Jupyter server (`_jupyter_link`), when the kernel has one: then the panels' messages come
  through the extension's mailbox, collected by a thread of the session, so they arrive while a cell runs;
  finished logins are claimed and tokens renewed by the kernel itself, through the extension;
- without a link, messages come over each panel's comm, which a busy kernel handles only after the cell, and
  a renewal is asked of one panel view in the browser (never all of them: each would get a new pair);
- the wait of `login()`, which ends when someone signs in, cancels, or no view shows up to sign in with.

Messages can arrive on several threads and in any order: every change happens under the one lock, handlers
never print and never raise, and a failed sign-in never replaces a working one.
"""

from __future__ import annotations

import contextlib
import keyword
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from . import _credentials as credentials
from . import _protocol as protocol
from . import _registry as registry
from . import _sources as sources
from ._client import Client
from ._dotenv import dotenv_notices, remember_in_dotenv
from ._errors import NotSignedIn, RefreshRejected, SpeckleAuthError
from ._jupyter_link import JupyterLink, find_link
from ._protocol import Secret, TokenPair
from ._public_app import PUBLIC_APP_ID, PUBLIC_APP_SECRET, PublicLogin, connector_app
from ._receiver import LoopbackReceiver, PortBusy, Received, code_from_pasted
from ._rotation import rotation_notice

__all__ = ["Session", "View", "check_variable_name", "session_for"]

_log = logging.getLogger("speckle_nb_auth.session")

NO_PANEL = (
    "This sign-in needs renewing, which goes through the login panel in the browser, and no panel was on "
    "screen to do it: log in again with the panel (run login() if none is shown)."
)
NO_ANSWER = (
    "This sign-in needs renewing through the login panel, which did not answer in time: keep the panel shown "
    "(run login() again), or log in again."
)
FLOW_ENDED = {
    "denied": "You chose not to give access: nothing changed.",
    "expired": "The sign-in expired: try again.",
    "failed": "The sign-in failed: try again.",
    "superseded": "A newer sign-in started in this browser replaced this one.",
}
FLOW_LIFETIME = 11 * 60.0
CONNECTOR_APP_NOTE = (
    "Signed in through Speckle's connector app, whose tokens can also write your projects and invite people: "
    "for least privilege, use a read-only personal access token or an app registered for this notebook."
)  # the extension's 10 minutes, and a little more for the last poll


class View(Protocol):
    """What the session needs of a panel."""

    panel_id: str
    variable: str

    def session_changed(self, message: str) -> None: ...

    def say(self, *, message: str = "", error: str = "") -> None: ...

    def flow_ended(self, flow_id: str, error: str) -> None: ...

    def send(self, content: dict[str, Any], buffers: Any = None) -> None: ...

    def handle(self, content: Any) -> None: ...

    def sign_in_claimed(self, server: str, pair: TokenPair, app_id: str | None) -> None: ...


@dataclass
class _Refresh:
    """A renewal asked of a browser view, waiting for its answer."""

    server: str
    event: threading.Event = field(default_factory=threading.Event)
    pair: TokenPair | None = field(default=None, repr=False)
    error: str | None = None


@dataclass
class _KernelLogin:
    """A "Log in with Speckle" through the public connector app that this kernel exchanges itself (where no
    server extension runs): its verifier lives in `login`, its listener in `receiver`."""

    id: str
    login: PublicLogin = field(repr=False)
    view: weakref.ref[Any]
    wanted: tuple[str, ...]
    receiver: LoopbackReceiver | None = None
    done: bool = False


@dataclass
class _Flow:
    """A "Log in with Speckle" the kernel finishes itself, through its link."""

    id: str
    server: str
    view: weakref.ref[Any]
    deadline: float
    poke: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False


class Session:
    """The kernel's sign-in. Made by `session_for(shell)`; panels register with `add_view`."""

    refresh_timeout = 15.0  # seconds a renewal waits for a browser view's answer

    def __init__(self, shell: Any, *, link: JupyterLink | None | bool = True) -> None:
        self.shell = shell
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.client: Client | None = None
        self.source = ""
        self.origin = ""  # where the credential came from, for people ("SPECKLE_TOKEN from the environment")
        self.held: tuple[str, ...] | None = None
        self.remembered = False
        self.told_no_keyring = False
        self.cancels = 0  # how many times someone pressed Cancel: ends a waiting login()
        self._views: list[weakref.ref[Any]] = []
        self._ready: dict[str, str | None] = {}  # panel id -> the id of its latest view that said "ready"
        self._refreshes: dict[str, _Refresh] = {}
        self._late: dict[str, str] = {}  # unanswered renewals: id -> server, to revoke pairs that come late
        self._flows: dict[str, _Flow] = {}
        self._kernel_login: _KernelLogin | None = None
        self.link: JupyterLink | None = (find_link() if link is True else link) or None
        self.mailbox = secrets.token_urlsafe(24) if self.link is not None else ""
        self._reader: threading.Thread | None = None
        if self.link is not None:
            self._reader = threading.Thread(target=self._read_mailbox, name="speckle-mailbox", daemon=True)
            self._reader.start()

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

    def _broadcast(self, message: str) -> None:
        for view in self.views():
            with contextlib.suppress(Exception):
                view.session_changed(message)

    # --- signing in -----------------------------------------------------------------------------------------

    def sign_in_quietly(self, server: str | None, wanted: tuple[str, ...]) -> str:
        """The environment, a remembered sign-in, a single desktop account; returns a note for people (why
        none worked) when nothing signed in."""
        try:
            found = sources.sign_in(
                server, scopes=wanted, make_client=lambda c: self.new_client(c.server, c.pair), fetch_scopes=True
            )
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
        view: View,
        server: str,
        pair: TokenPair,
        source: str,
        wanted: tuple[str, ...],
        *,
        store: bool,
        app_id: str | None = None,
    ) -> tuple[str, ...] | None:
        """Validate `pair` for `server`; on success inject the client, else tell `view` why (keeping any
        sign-in). Returns None when signed in, else the requested scopes the token lacks (maybe none)."""
        with self.lock:
            try:
                client = self.new_client(server, pair, app_id)
            except SpeckleAuthError as err:
                view.say(error=self.still_signed_in(_token_message(err, server, source)))
                return ()
            check = sources.check_scopes(wanted, sources.token_scopes(client))
            if check.missing:
                if source == "oauth":  # made for this sign-in and now held by nobody: take it back
                    with contextlib.suppress(SpeckleAuthError):
                        client.logout(revoke=True)
                else:
                    client.close()
                view.say(error=self.still_signed_in(check.missing_message()))
                return check.missing
            origin = CONNECTOR_APP_NOTE if app_id == PUBLIC_APP_ID else ""
            self.commit(client, source, check.held, store=store, origin=origin)
            return None

    def new_client(self, server: str, pair: TokenPair, app_id: str | None = None) -> Client:
        made: list[Client] = []

        def on_refresh(new: TokenPair) -> None:
            if made:
                self._pair_refreshed(made[0], new)

        # The kernel refreshes by itself where it holds the app of this very server or reaches the extension;
        # else a browser view asks the extension.
        refresher: Callable[[TokenPair], TokenPair] | None = None
        if app_id == PUBLIC_APP_ID:  # its secret is public: the kernel renews by itself
            refresher = lambda old: _refresh_public(server, old)  # noqa: E731
        elif credentials.app_from_environment(server) is None:
            refresher = lambda old: self._refresh(server, old)  # noqa: E731
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
            old, self.client = self.client, client
            registry.register(client)
            client.on_logout(self._client_logged_out)
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
            for flow in self._flows.values():
                flow.stopped = True
            self.changed.notify_all()
            if old is not None and old is not client:
                registry.unregister(old)
                old.close()  # replaced by a new sign-in: not revoked (it may be a token used elsewhere)
        self._broadcast(" ".join(n for n in notes if n))

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

    # --- logging out ----------------------------------------------------------------------------------------

    def logout(self) -> str | None:
        """Log out from a panel; returns an error for people, or None."""
        with self.lock:
            client = self.client
            if client is None:
                return None
            desktop, shared = self.source == "desktop", self.source in ("environment", "dotenv")
            problem = None
            try:
                # A desktop account's token belongs to Speckle's desktop apps, SPECKLE_TOKEN to whatever set
                # it (often automation too): neither is revoked from here.
                client.logout(revoke=not (desktop or shared))
            except SpeckleAuthError:
                problem = (
                    f"Logged out here, but {client.url} could not be reached to revoke the token: revoke it "
                    f"yourself at {client.url}/settings (Developer settings, Access tokens)."
                )
            self._client_logged_out(client, quiet=True)
        if problem:
            self._broadcast("Logged out.")
            return problem
        if desktop:
            self._broadcast("Logged out in this notebook; the desktop account stays signed in for Speckle's "
                            "desktop apps.")
        elif shared:
            self._broadcast("Logged out in this notebook. SPECKLE_TOKEN was not revoked (it may serve other "
                            "jobs); unset it to stop signing in with it, or revoke it in Speckle's settings.")
        else:
            self._broadcast("Logged out: the token was revoked and forgotten.")
        return None

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
            self._broadcast("Logged out.")

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
        self._broadcast(message)
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
            for flow in self._flows.values():
                flow.stopped = True
                flow.poke.set()
            pending, self._kernel_login = self._kernel_login, None
            self.changed.notify_all()
        if pending is not None and pending.receiver is not None:
            pending.receiver.close()

    def wait(self, view: View, timeout: float, view_timeout: float, *, cancels: int) -> str:
        """Block until signed in ("signed_in"), cancelled since the count was `cancels` ("cancelled"), `timeout`
        passed ("timeout"), or no view of `view` said it is shown within `view_timeout` ("no_view"). The count
        is taken before the panel exists: a Cancel can come through the mailbox before the wait begins."""
        start = time.monotonic()
        with self.lock:
            while True:
                if self.client is not None:
                    return "signed_in"
                if self.cancels != cancels:
                    return "cancelled"
                waited = time.monotonic() - start
                if waited >= timeout:
                    return "timeout"
                if not self.seen(view):
                    if waited >= view_timeout:
                        return "no_view"
                    self.changed.wait(min(view_timeout, timeout) - waited)
                else:
                    self.changed.wait(timeout - waited)

    # --- "Log in with Speckle" where no extension runs: the kernel listens and exchanges ------------------

    def start_kernel_login(self, view: View, flow_id: str, server: str, wanted: tuple[str, ...]) -> None:
        """Start a public-app sign-in the kernel finishes itself; tells `view` the address to open (and
        whether its answer can come back here, or must be pasted). Runs on a thread of its own."""
        threading.Thread(target=self._kernel_login_thread, args=(view, flow_id, server, wanted),
                         name="speckle-kernel-login", daemon=True).start()

    def _kernel_login_thread(self, view: View, flow_id: str, server: str, wanted: tuple[str, ...]) -> None:
        try:
            app = connector_app(server)
            lacking = app.lacking_message(wanted)
            if lacking:
                view.flow_ended(flow_id, lacking)
                return
            pending = _KernelLogin(flow_id, PublicLogin(server, app), weakref.ref(view), wanted)
            with self.lock:
                old, self._kernel_login = self._kernel_login, pending
            if old is not None and old.receiver is not None:
                old.receiver.close()
            receiver = LoopbackReceiver(app.redirect_url, on_result=lambda r: self._kernel_received(pending, r),
                                        back_to="the notebook")
            try:
                pending.receiver = receiver.start()
                paste = False
            except PortBusy:
                paste = True
            view.send({"type": "authorize", "flow": flow_id, "url": pending.login.authorize_url, "paste": paste})
        except SpeckleAuthError as err:
            view.flow_ended(flow_id, self.still_signed_in(err.message))
        except Exception as err:  # noqa: BLE001 - a thread of ours must end in a message, never a traceback
            _log.debug("a kernel login failed: %s", type(err).__name__)
            view.flow_ended(flow_id, "Something unexpected went wrong while starting the sign-in: try again.")

    def _kernel_received(self, pending: _KernelLogin, received: Received) -> None:
        """The receiver's answer (on its thread)."""
        view = pending.view()
        if view is None or received.kind == "cancelled":
            return
        if received.kind == "code" and received.code:
            self._finish_kernel_login(pending, received.code)
        elif received.kind == "denied":
            view.flow_ended(pending.id, self.still_signed_in(FLOW_ENDED["denied"]))
        else:
            view.flow_ended(pending.id, self.still_signed_in(FLOW_ENDED["expired"]))

    def paste(self, view: View, flow_id: str, pasted: str) -> None:
        """Paste-back where the kernel holds the login: the address the sign-in tab ended on, or the code."""
        with self.lock:
            pending = self._kernel_login
        if pending is None or pending.id != flow_id or pending.done:
            view.say(error=self.still_signed_in("No sign-in waits for that address any more: log in again."))
            return
        try:
            code = code_from_pasted(pasted)
        except SpeckleAuthError as err:
            view.say(error=err.message)
            return
        if pending.receiver is not None:
            pending.receiver.close()
        self._finish_kernel_login(pending, code)

    def _finish_kernel_login(self, pending: _KernelLogin, code: str) -> None:
        with self.lock:
            if pending.done:
                return
            pending.done = True
            if self._kernel_login is pending:
                self._kernel_login = None
        view = pending.view()
        try:
            pair = pending.login.exchange(code)
        except SpeckleAuthError as err:
            if view is not None:
                view.flow_ended(pending.id, self.still_signed_in(err.message))
            return
        if view is None:
            _revoke(pending.login.server, pair)
            return
        view.sign_in_claimed(pending.login.server, pair, PUBLIC_APP_ID)

    # --- the link: mailbox, logins finished by the kernel, renewals -----------------------------------------

    def _read_mailbox(self) -> None:
        """The mailbox thread: long polls for the panels' messages and hands each to its panel."""
        assert self.link is not None
        pause = 0.5
        with self.link.client(timeout=40.0) as http:
            while True:
                try:
                    response = http.get(self.link.url(f"mailbox/{self.mailbox}"), params={"wait": "20"})
                    response.raise_for_status()
                    messages = response.json().get("messages") or []
                    pause = 0.5
                except (httpx.HTTPError, ValueError, AttributeError):
                    time.sleep(pause)  # the server restarts or is gone: ask again, less often
                    pause = min(pause * 2, 10.0)
                    continue
                for message in messages:
                    self._deliver(message)

    def _deliver(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        panel_id = message.get("panel")
        for view in self.views():
            if view.panel_id == panel_id:
                view.handle(message)
                return

    def track_flow(self, view: View, flow_id: str, server: str) -> None:
        """A browser view opened the login `flow_id`: poll it through the link and claim it when it is done,
        so the token goes from the extension to this kernel without the browser."""
        with self.lock:
            for old in self._flows.values():
                old.stopped = True
                old.poke.set()
            flow = _Flow(flow_id, server, weakref.ref(view), time.monotonic() + FLOW_LIFETIME)
            self._flows = {flow_id: flow}
        threading.Thread(target=self._follow, args=(flow,), name="speckle-flow", daemon=True).start()

    def poke_flow(self, flow_id: str) -> None:
        with self.lock:
            flow = self._flows.get(flow_id)
        if flow is not None:
            flow.poke.set()

    def _follow(self, flow: _Flow) -> None:
        assert self.link is not None
        try:
            error = self._poll_until_claimed(flow)
        except Exception as err:  # noqa: BLE001 - a thread of ours must end in a message, never a traceback
            _log.debug("following a login failed: %s", type(err).__name__)
            error = "Something unexpected went wrong while finishing the sign-in: log in again."
        with self.lock:
            if self._flows.get(flow.id) is flow:
                del self._flows[flow.id]
        view = flow.view()
        if view is not None and error:
            view.flow_ended(flow.id, self.still_signed_in(error))

    def _poll_until_claimed(self, flow: _Flow) -> str:
        assert self.link is not None
        with self.link.client() as http:
            while not flow.stopped:
                if time.monotonic() > flow.deadline:
                    return FLOW_ENDED["expired"]
                try:
                    response = http.get(self.link.url(f"flows/{flow.id}"))
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 200:
                    state = response.json()
                    status = state.get("status")
                    if status == "done":
                        return self._claim(http, flow)
                    if status != "pending":
                        return str(state.get("message") or FLOW_ENDED.get(str(status), FLOW_ENDED["failed"]))
                elif response is not None and response.status_code != 404:  # 404: the tab has not started it
                    return f"Jupyter refused to report on the sign-in (HTTP {response.status_code}): log in again."
                flow.poke.wait(0.5)
                flow.poke.clear()
        return ""

    def _claim(self, http: httpx.Client, flow: _Flow) -> str:
        assert self.link is not None
        response = http.post(self.link.url(f"flows/{flow.id}/claim"), json={})
        json_answer = response.headers.get("content-type", "").startswith("application/json")
        data = _masked(response.json()) if json_answer else {}
        if response.status_code != 200 or not isinstance(data.get("token"), str):
            return str(data.get("message") or "The token could not be collected: log in again.")
        pair = TokenPair(data["token"], data.get("refresh_token") or None)
        server = str(data.get("server_url") or flow.server)
        app_id = data.get("app_id") if isinstance(data.get("app_id"), str) else None
        view = flow.view()
        if view is None:  # the panel is gone: nobody will hold this pair
            _revoke(server, pair)
            return ""
        view.sign_in_claimed(server, pair, app_id)
        return ""

    def _refresh(self, server: str, pair: TokenPair) -> TokenPair:
        """The clients' refresher: through the link when there is one, else through one browser view."""
        if self.link is not None:
            return self._refresh_via_link(server, pair)
        return self._refresh_via_browser(server, pair)

    def _refresh_via_link(self, server: str, pair: TokenPair) -> TokenPair:
        assert self.link is not None
        try:
            response = self.link.post("refresh", {"server_url": server, "refresh_token": pair.refresh_token})
            data = _masked(response.json())
        except (httpx.HTTPError, ValueError):
            raise RefreshRejected(
                "This sign-in needs renewing, and the Jupyter server could not be reached to do it: log in "
                "again.", code="refresh_unavailable"
            ) from None
        if response.status_code != 200 or not isinstance(data.get("token"), str):
            text = str(data.get("message") or "The sign-in could not be renewed: log in again.")
            self._tell_all_error(text)
            raise RefreshRejected(text)
        return TokenPair(data["token"], data.get("refresh_token") or None)

    def _refresh_via_browser(self, server: str, pair: TokenPair) -> TokenPair:
        """Ask ONE browser view (the latest that said "ready") to renew the pair through the extension: each
        view asked would come back with a pair of its own, and all but one would be held by nobody."""
        target = self._refresh_target()
        if target is None:
            raise RefreshRejected(NO_PANEL, code="refresh_unavailable")
        view, view_id = target
        rid = secrets.token_urlsafe(18)
        pending = _Refresh(server)
        with self.lock:
            self._refreshes[rid] = pending
        try:
            request = {"type": "refresh", "id": rid, "server_url": server, "refresh_token": pair.refresh_token}
            if view_id:
                request["view"] = view_id
            view.send(request)
            answered = pending.event.wait(self.refresh_timeout)
        finally:
            with self.lock:
                self._refreshes.pop(rid, None)
                if not pending.event.is_set():
                    self._late[rid] = server
                    while len(self._late) > 32:
                        self._late.pop(next(iter(self._late)))
        if not answered:
            self._tell_all_error(NO_ANSWER)
            raise RefreshRejected(NO_ANSWER, code="refresh_timeout")
        if pending.pair is None:
            text = pending.error or "The sign-in could not be renewed: log in again."
            self._tell_all_error(text)
            raise RefreshRejected(text)
        return pending.pair

    def _refresh_target(self) -> tuple[Any, str | None] | None:
        if getattr(_handling, "active", False):
            return None  # inside a message handler the answer could not arrive while we wait
        with self.lock:
            views = {v.panel_id: v for v in self.views()}
            for panel_id in reversed(list(self._ready)):
                view = views.get(panel_id)
                if view is not None and getattr(view, "comm", None) is not None:
                    return view, self._ready[panel_id]
        return None

    def refresh_answered(self, rid: str, pair: TokenPair | None, error: str | None) -> None:
        with self.lock:
            pending = self._refreshes.get(rid)
            if pending is not None and not pending.event.is_set():
                pending.pair, pending.error = pair, error
                pending.event.set()
                return
            late = self._late.pop(rid, None)
        if late is not None and pair is not None:
            _revoke(late, pair)  # nobody waits for this pair any more: do not leave it valid

    def _tell_all_error(self, text: str) -> None:
        for view in self.views():
            with contextlib.suppress(Exception):
                view.say(error=text)


class _Handling(threading.local):
    active = False


_handling = _Handling()


@contextlib.contextmanager
def handling_message() -> Any:
    """Marks the current thread as inside a panel's message handler (see `_refresh_target`)."""
    _handling.active = True
    try:
        yield
    finally:
        _handling.active = False


_sessions: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()
_no_shell: list[Session] = []
_sessions_lock = threading.Lock()


def session_for(shell: Any) -> Session:
    """The session of `shell` (IPython's), made on first use."""
    with _sessions_lock:
        if shell is None:
            if not _no_shell:
                _no_shell.append(Session(None))
            return _no_shell[0]
        session = _sessions.get(shell)
        if session is None:
            session = _sessions[shell] = Session(shell)
        return session


def check_variable_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        shown = name[:40] if isinstance(name, str) else type(name).__name__
        raise ValueError(f"{shown!r} cannot be a variable name: use a Python identifier such as 'speckle'.")


def _where_from(source: str, origin: str) -> str:
    if source == "environment":
        return "Signed in with SPECKLE_TOKEN from the environment."
    if source == "keyring":
        return "Signed in with the sign-in remembered on this machine."
    if source == "desktop":
        return "Signed in with a Speckle desktop account."
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


def _refresh_public(server: str, pair: TokenPair) -> TokenPair:
    from ._transport import call, ssl_context

    if pair.refresh_token is None:
        raise RefreshRejected("This sign-in cannot be renewed: log in again.")
    with httpx.Client(timeout=10.0, verify=ssl_context()) as http:
        return call(http, protocol.refresh(server, PUBLIC_APP_ID, PUBLIC_APP_SECRET, pair.refresh_token))


def _masked(data: Any) -> dict[str, Any]:
    """The extension's JSON answer with its tokens as `Secret`s: what a traceback of the frame holding it shows."""
    if not isinstance(data, dict):
        return {}
    return {key: Secret(value) if key in ("token", "refresh_token") and isinstance(value, str) else value
            for key, value in data.items()}


def _revoke(server: str, pair: TokenPair) -> None:
    from ._transport import call, ssl_context

    try:
        with httpx.Client(timeout=5.0, verify=ssl_context()) as http:
            call(http, protocol.logout(server, pair.token, pair.refresh_token))
    except Exception:  # noqa: BLE001, S110 - best effort
        pass

