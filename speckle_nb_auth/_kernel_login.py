""""Log in with Speckle" that the kernel finishes itself, where no server extension runs (VS Code, a Jupyter
without the extension): a public-app sign-in (`_public_app`) whose loopback listener runs on a thread of the
kernel, or, where its port is taken, whose address is pasted back (in the panel, or at `login()`'s prompt).
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from ._errors import SpeckleAuthError
from ._public_app import PUBLIC_APP_ID, PublicLogin, connector_app, revoke_unheld
from ._receiver import LoopbackReceiver, PortBusy, Received
from ._session import FLOW_ENDED, Session, View

__all__ = ["KernelLogin", "KernelSignIn"]

_log = logging.getLogger("speckle_nb_auth.session")


@dataclass
class KernelSignIn:
    """One sign-in: its verifier lives in `login`, its listener (None: the answer is pasted) in `receiver`.
    `ended` says why it ended without a sign-in, once it has."""

    id: str
    login: PublicLogin = field(repr=False)
    view: weakref.ref[Any] = field(repr=False)
    receiver: LoopbackReceiver | None = None
    busy_port: str = ""  # why nothing listens, when the port was taken
    done: bool = False
    ended: str | None = None

    @property
    def authorize_url(self) -> str:
        return self.login.authorize_url


class KernelLogin:
    """The kernel's own public-app sign-in: one at a time."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._pending: KernelSignIn | None = None

    def stop(self, *, cancelled: bool) -> None:
        """A sign-in elsewhere leaves this one to finish (its tab may be open); Cancel ends it."""
        if not cancelled:
            return
        with self.session.lock:
            pending, self._pending = self._pending, None
        if pending is not None and pending.receiver is not None:
            pending.receiver.close()

    def start(self, view: View, flow_id: str, server: str, wanted: tuple[str, ...]) -> None:
        """Start a sign-in for the panel's button; tells `view` the address to open (and whether its answer can
        come back here, or must be pasted). Runs on a thread of its own."""
        threading.Thread(target=self._start, args=(view, flow_id, server, wanted),
                         name="speckle-kernel-login", daemon=True).start()

    def _start(self, view: View, flow_id: str, server: str, wanted: tuple[str, ...]) -> None:
        try:
            pending = self.begin(view, flow_id, server, wanted)
            view.send({"type": "authorize", "flow": flow_id, "url": pending.authorize_url,
                       "paste": pending.receiver is None})
        except SpeckleAuthError as err:
            view.flow_ended(flow_id, self.session.still_signed_in(err.message))
        except Exception as err:  # noqa: BLE001 - a thread of ours must end in a message, never a traceback
            _log.debug("a kernel login failed: %s", type(err).__name__)
            view.flow_ended(flow_id, "Something unexpected went wrong while starting the sign-in: try again.")

    def begin(
        self, view: View, flow_id: str, server: str, wanted: tuple[str, ...], *, listen: bool = True
    ) -> KernelSignIn:
        """Make a sign-in and, with `listen`, its listener (a taken port leaves it to paste-back). Raises a
        `SpeckleAuthError` saying why none can start (no connector app, scopes it cannot give, no server, another
        user's program on the app's port)."""
        app = connector_app(server)
        lacking = app.lacking_message(wanted)
        if lacking:
            raise SpeckleAuthError(lacking)
        pending = KernelSignIn(flow_id, PublicLogin(server, app), weakref.ref(view))
        with self.session.lock:
            old, self._pending = self._pending, pending
        if old is not None and old.receiver is not None:
            old.receiver.close()
        if listen:
            try:
                pending.receiver = pending.login.listen(lambda r: self._received(pending, r), back_to="the notebook")
            except PortBusy as err:
                pending.busy_port = err.message
        else:
            pending.login.check_port()
        return pending

    def _received(self, pending: KernelSignIn, received: Received) -> None:
        """The listener's answer (on its thread)."""
        if received.kind == "cancelled":
            return
        if received.kind == "code" and received.code:
            self._finish(pending, received.code)
        else:
            self._end(pending, FLOW_ENDED["denied" if received.kind == "denied" else "expired"])

    def paste(self, view: View, flow_id: str, pasted: str) -> None:
        """Paste-back in the panel: the address the sign-in tab ended on, or the code."""
        with self.session.lock:
            pending = self._pending
        if pending is None or pending.id != flow_id or pending.done:
            view.say(error=self.session.still_signed_in("No sign-in waits for that address any more: log in again."))
            return
        try:
            code = pending.login.code_from(pasted)
        except SpeckleAuthError as err:
            view.say(error=err.message)
            return
        self.finish_with(pending, code)

    def finish_with(self, pending: KernelSignIn, code: str) -> None:
        """Finish `pending` with a code that came some other way than its listener (which closes)."""
        if pending.receiver is not None:
            pending.receiver.close()
        self._finish(pending, code)

    def _finish(self, pending: KernelSignIn, code: str) -> None:
        with self.session.lock:
            if pending.done:
                return
            pending.done = True
            if self._pending is pending:
                self._pending = None
        view = pending.view()
        try:
            pair = pending.login.exchange(code)
        except SpeckleAuthError as err:
            self._end(pending, err.message)
            return
        if view is None:
            revoke_unheld(pending.login.server, pair)
            return
        error = view.sign_in_claimed(pending.login.server, pair, PUBLIC_APP_ID)
        if error:  # the view shows it already
            self._end(pending, error, tell_view=False)

    def _end(self, pending: KernelSignIn, message: str, *, tell_view: bool = True) -> None:
        """`pending` ended without a sign-in: its view says why, and a waiting `login()` hears it."""
        with self.session.lock:
            pending.done = True
            pending.ended = message
            if self._pending is pending:
                self._pending = None
            self.session.changed.notify_all()
        view = pending.view()
        if view is not None and tell_view:
            view.flow_ended(pending.id, self.session.still_signed_in(message))
