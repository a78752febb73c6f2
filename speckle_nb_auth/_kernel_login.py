""""Log in with Speckle" that the kernel finishes itself, where no server extension runs (VS Code, a Jupyter
without the extension): a public-app sign-in (`_public_app`) whose loopback listener runs on a thread of the
kernel, or, where its port is taken, whose address the panel pastes back.
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

__all__ = ["KernelLogin"]

_log = logging.getLogger("speckle_nb_auth.session")


@dataclass
class _Pending:
    """One sign-in: its verifier lives in `login`, its listener in `receiver`."""

    id: str
    login: PublicLogin = field(repr=False)
    view: weakref.ref[Any]
    receiver: LoopbackReceiver | None = None
    done: bool = False


class KernelLogin:
    """The kernel's own public-app sign-in: one at a time."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._pending: _Pending | None = None

    def stop(self, *, cancelled: bool) -> None:
        """A sign-in elsewhere leaves this one to finish (its tab may be open); Cancel ends it."""
        if not cancelled:
            return
        with self.session.lock:
            pending, self._pending = self._pending, None
        if pending is not None and pending.receiver is not None:
            pending.receiver.close()

    def start(self, view: View, flow_id: str, server: str, wanted: tuple[str, ...]) -> None:
        """Start a sign-in; tells `view` the address to open (and whether its answer can come back here, or must
        be pasted). Runs on a thread of its own."""
        threading.Thread(target=self._start, args=(view, flow_id, server, wanted),
                         name="speckle-kernel-login", daemon=True).start()

    def _start(self, view: View, flow_id: str, server: str, wanted: tuple[str, ...]) -> None:
        try:
            app = connector_app(server)
            lacking = app.lacking_message(wanted)
            if lacking:
                view.flow_ended(flow_id, lacking)
                return
            pending = _Pending(flow_id, PublicLogin(server, app), weakref.ref(view))
            with self.session.lock:
                old, self._pending = self._pending, pending
            if old is not None and old.receiver is not None:
                old.receiver.close()
            try:
                pending.receiver = pending.login.listen(lambda r: self._received(pending, r), back_to="the notebook")
                paste = False
            except PortBusy:
                paste = True
            view.send({"type": "authorize", "flow": flow_id, "url": pending.login.authorize_url, "paste": paste})
        except SpeckleAuthError as err:
            view.flow_ended(flow_id, self.session.still_signed_in(err.message))
        except Exception as err:  # noqa: BLE001 - a thread of ours must end in a message, never a traceback
            _log.debug("a kernel login failed: %s", type(err).__name__)
            view.flow_ended(flow_id, "Something unexpected went wrong while starting the sign-in: try again.")

    def _received(self, pending: _Pending, received: Received) -> None:
        """The listener's answer (on its thread)."""
        view = pending.view()
        if view is None or received.kind == "cancelled":
            return
        if received.kind == "code" and received.code:
            self._finish(pending, received.code)
        elif received.kind == "denied":
            view.flow_ended(pending.id, self.session.still_signed_in(FLOW_ENDED["denied"]))
        else:
            view.flow_ended(pending.id, self.session.still_signed_in(FLOW_ENDED["expired"]))

    def paste(self, view: View, flow_id: str, pasted: str) -> None:
        """Paste-back: the address the sign-in tab ended on, or the code."""
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
        if pending.receiver is not None:
            pending.receiver.close()
        self._finish(pending, code)

    def _finish(self, pending: _Pending, code: str) -> None:
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
            if view is not None:
                view.flow_ended(pending.id, self.session.still_signed_in(err.message))
            return
        if view is None:
            revoke_unheld(pending.login.server, pair)
            return
        view.sign_in_claimed(pending.login.server, pair, PUBLIC_APP_ID)
