"""The login panel: a view of the kernel's one sign-in (`_session`).

The panel turns the browser's one-shot messages (`_messages`) into calls on the session and its parts, and
mirrors the session's state into its traits (`_traits`: never a secret). Messages come over the comm or, while
a cell runs, through the server extension's mailbox on the link's mailbox thread; handlers never print and never
raise. Tokens travel only in one-shot messages, never in the synced state, which a saved notebook keeps.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

from .. import _protocol as protocol
from .. import _sources as sources
from .._browser_renewal import handling_message
from .._desktop import DesktopAccount, desktop_accounts
from .._errors import SpeckleAuthError
from .._logout import log_out, revoke_kept
from .._protocol import TokenPair
from .._session import Session, check_variable_name
from .._sessions import parts_of, session_for
from . import _messages as msgs
from ._display import ShownOnce
from ._traits import PanelTraits

__all__ = ["LoginPanel"]

_log = logging.getLogger("speckle_nb_auth.panel")

GENERIC_ERROR = (
    "Something unexpected went wrong, and nothing was changed. Try again; if it keeps happening, restart the "
    "kernel and run login() again."
)


class LoginPanel(ShownOnce, PanelTraits):
    """Sign in to Speckle from a notebook; the signed-in `Client` appears in the namespace as `variable`.

    Made by `speckle_nb_auth.login()`. Every panel of a kernel shows the same sign-in. Only non-secret state
    is synced (and so saved with a notebook).
    """

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
        check_variable_name(name)
        url = protocol.normalize_server_url(server) if server else ""
        wanted = sources.normalize_scopes(scopes)
        shell = shell if shell is not None else _current_shell()
        session = session_for(shell)
        parts = parts_of(session)
        super().__init__(
            variable=name,
            server_url=url,
            default_server=sources.default_server(),
            remember=bool(remember),
            requested_scopes=list(wanted),
            kernel_refresh=_kernel_can_refresh(),
            panel_id=secrets.token_urlsafe(12),
            mailbox=parts.mailbox,
            **kwargs,
        )
        self._shell = shell
        self.session: Session = session
        self.parts = parts
        self._wanted = wanted
        self._fixed_server = url or None
        self._lock = threading.RLock()
        self._desktop: list[DesktopAccount] = []
        self._local = threading.local()
        session.add_view(self)
        self.on_msg(self._handle_message)
        self.observe(self._on_remember_toggled, names=["remember"])
        with self._guard("Could not look for sign-ins on this machine"):
            self._list_desktop_accounts()
            if session.client is not None:
                session.add_variable(self)
                self.session_changed("")
            elif autostart:
                note = session.sign_in_quietly(self._fixed_server, wanted)
                if session.client is None and note:
                    self._set(message=note)
                elif session.client is not None and self.remember and session.source == "desktop":
                    session.set_remembered(True)

    # --- what users and tests see ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The signed-in client, or None."""
        return self.session.client

    @property
    def refresh_timeout(self) -> float:
        """How long a renewal through the browser waits for its answer, in seconds."""
        return self.parts.renewal.timeout

    @refresh_timeout.setter
    def refresh_timeout(self, seconds: float) -> None:
        self.parts.renewal.timeout = seconds

    @property
    def wanted(self) -> tuple[str, ...]:
        """The scopes this panel's notebook asks for."""
        return self._wanted

    def wait_for_sign_in(self, url: str, *, paste: bool = False, until: float = 0.0, message: str = "") -> None:
        """Show (or, with no `url`, stop showing) the kernel's own sign-in that `login()` waits for in its cell."""
        self._set(sign_in_url=url, sign_in_paste=paste, waiting_until=until, message=message)

    def __repr__(self) -> str:
        if self.client is None:
            return f"<speckle_nb_auth.LoginPanel {self.status}>"
        return (
            f"<speckle_nb_auth.LoginPanel {self.status} user={self.user_name!r} server={self.server_url!r} "
            f"variable={self.variable!r}>"
        )

    def close(self) -> None:
        self.session.remove_view(self)
        super().close()

    # --- the browser's messages -----------------------------------------------------------------------------

    def _handle_message(self, widget: Any, content: Any, buffers: Any) -> None:
        """anywidget's `on_msg` callback. Never raises, never prints."""
        with handling_message():
            self.handle(content)

    def handle(self, content: Any) -> None:
        """One message from the browser half, by comm or by mailbox. Never raises, never prints."""
        with self._guard():
            try:
                message = msgs.parse(content)
            except msgs.BadMessage as err:
                self.say(error=self.session.still_signed_in(err.message))
                return
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: msgs.Message) -> None:
        session = self.session
        if isinstance(message, msgs.Ready):
            session.view_ready(self, message.view)
        elif isinstance(message, msgs.Pat):
            server = message.server or self.server_url or sources.default_server()
            self._sign_in(server, TokenPair(message.token), "token")
        elif isinstance(message, msgs.OAuth):
            self._sign_in(message.server, message.pair, "oauth", app_id=message.app_id)
        elif isinstance(message, msgs.Desktop):
            with self._lock:
                account = self._desktop[message.index] if message.index < len(self._desktop) else None
            if account is None:
                self.say(error=self.session.still_signed_in(
                    "That desktop account is no longer listed: run login() again to refresh the list."))
                return
            self._sign_in(account.server_url, account.pair, "desktop", store=self.remember)
        elif isinstance(message, (msgs.Logout, msgs.RevokeKept)):
            problem = (log_out if isinstance(message, msgs.Logout) else revoke_kept)(session)
            if problem:
                self.say(error=problem)
        elif isinstance(message, msgs.Cancel):
            session.cancel()
            if session.client is None:
                self.say(message="Sign-in cancelled.")
        elif isinstance(message, msgs.FlowStarted):
            if self.parts.link is None:
                self.say(error="This kernel cannot reach its Jupyter server to finish the sign-in: log in again.")
                return
            self._set(error="", message="")
            self.parts.link.track(self, message.flow, message.server)
        elif isinstance(message, msgs.FlowDone):
            if self.parts.link is not None:
                self.parts.link.poke(message.flow)
        elif isinstance(message, msgs.KernelLogin):
            self._set(error="", message="")
            server = message.server or self.server_url or sources.default_server()
            self.parts.kernel_login.start(self, message.flow, server, self._wanted)
        elif isinstance(message, msgs.Paste):
            self.parts.kernel_login.paste(self, message.flow, message.pasted)
        elif isinstance(message, msgs.RememberFile):
            text, error = session.remember_in_file()
            self._set(message=text, error=error, no_keyring=bool(error))
        elif isinstance(message, msgs.Refreshed):
            self.parts.renewal.answered(message.id, message.pair, None)
        elif isinstance(message, msgs.RefreshFailed):
            self.parts.renewal.answered(message.id, None, message.message or None)

    # --- signing in -----------------------------------------------------------------------------------------

    def _sign_in(
        self, server: str, pair: TokenPair, source: str, *, store: bool | None = None, app_id: str | None = None
    ) -> str:
        self._set(busy=True, error="", message=f"Checking the sign-in with {server}…")
        try:
            result = self.session.sign_in(
                server, pair, source, self._wanted, store=self.remember if store is None else store, app_id=app_id
            )
            if result.error:
                self._set(error=result.error, message="")
            if result.missing:
                self._set(missing_scopes=list(result.missing))
            return result.error
        finally:
            self._set(busy=False)

    def sign_in_claimed(self, server: str, pair: TokenPair, app_id: str | None) -> str:
        """The session claimed a finished login for this panel (on its own thread); what went wrong."""
        with self._guard():
            return self._sign_in(server, pair, "oauth", app_id=app_id)
        return self.error or GENERIC_ERROR

    # --- the session's news ---------------------------------------------------------------------------------

    def session_changed(self, message: str) -> None:
        """Mirror the session's sign-in into this panel's traits."""
        with self._guard():
            session = self.session
            client = session.client
            if client is None:
                self._set(status="signed_out", source="", server_name="", user_name="", user_email="",
                          user_avatar="", scopes=[], missing_scopes=[], error="", message=message,
                          waiting_until=0.0, internal_remember=False, kept_token=session.kept is not None)
                return
            check = self._check()
            notes = [message, check.describe()]
            self._set(
                status="signed_in",
                source=session.source,
                server_url=client.url,
                server_name=client.server.name,
                user_name=client.user.name,
                user_email=client.user.email or "",
                user_avatar=_safe_avatar(client.user.avatar),
                scopes=check.display(),
                missing_scopes=[],
                error="",
                message=" ".join(n for n in notes if n),
                waiting_until=0.0,
                no_keyring=session.told_no_keyring and not session.remembered
                and session.source not in ("dotenv", "environment"),
                internal_remember=session.remembered, kept_token=False,
            )

    def _check(self) -> sources.ScopeCheck:
        client = self.session.client
        return sources.check_scopes(self._wanted, self.session.held, client.probed_scopes if client else None)

    def say(self, *, message: str = "", error: str = "") -> None:
        with self._guard():
            self._set(message=message, error=error)

    def flow_ended(self, flow_id: str, error: str) -> None:
        """A login the session followed ended without a sign-in: tell the view that opened it."""
        with self._guard():
            self._set(error=error, message="")
            self.send({"type": "flow_ended", "flow": flow_id})

    # --- remember me ----------------------------------------------------------------------------------------

    def _on_remember_toggled(self, change: dict[str, Any]) -> None:
        """The box was ticked or cleared while signed in: store or forget the sign-in now."""
        if getattr(self._local, "internal", False):
            return
        with self._guard():
            message, error = self.session.set_remembered(bool(change["new"]))
            if error:
                self._set(error=error, internal_remember=False, no_keyring=True)
            elif message:
                self._set(error="", message=message)

    # --- helpers --------------------------------------------------------------------------------------------

    def _list_desktop_accounts(self) -> None:
        accounts = desktop_accounts(self._fixed_server)
        with self._lock:
            self._desktop = accounts
            self._set(desktop_accounts=[{"label": a.label, "server_url": a.server_url} for a in accounts])

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

    def _safe_fail(self, text: str) -> None:
        try:
            self._set(error=self.session.still_signed_in(text), message="")
        except Exception:  # noqa: BLE001, S110 - the panel itself is broken: nothing more to tell
            pass


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
