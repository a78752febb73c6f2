"""The kernel's sign-in as JupyterLab's status bar shows it: a comm with the frontend extension.

The kernel opens a comm (target `speckle_nb_auth.status`) when its session is made, and answers one that the
frontend opens (after a page load, or for a notebook it just met). Each comm gets a summary of the sign-in at
once and after every change: who, on which server, from where, with which scopes, and the token's age and
expiry where Speckle tells them. A summary holds what the person may see and never a token. The frontend may
ask for a logout through it, which is the panel's Log out.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ._login_wait import nobody_there
from ._logout import log_out
from ._rotation import TokenAge, rotation_message, token_age

if TYPE_CHECKING:
    from ._client import Client
    from ._session import Session

__all__ = ["TARGET", "FrontendStatus"]

TARGET = "speckle_nb_auth.status"
# Where a sign-in came from, as the status bar's tooltip says it.
_FROM = {
    "oauth": "Log in with Speckle",
    "token": "a personal access token",
    "environment": "SPECKLE_TOKEN from the environment",
    "keyring": "the sign-in remembered on this machine",
    "dotenv": "a .env file",
    "desktop": "a Speckle desktop account",
    "hub": "your hub login",
}


class FrontendStatus:
    """Publishes `session`'s sign-in to every status comm open in this kernel."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.comms: list[Any] = []
        self._lock = threading.Lock()
        self._age: tuple[weakref.ref[Client], TokenAge | None] | None = None  # asked of Speckle once per client
        self._held: list[str] | None = None  # while a logout asked by the frontend runs: what was said meanwhile

    def start(self) -> FrontendStatus:
        """Only in a Jupyter kernel: anywhere else no frontend listens."""
        if getattr(self.session.shell, "kernel", None) is None:
            return self
        from comm import create_comm, get_comm_manager

        get_comm_manager().register_target(TARGET, self._opened)
        # Nobody there: no status bar to tell, and nbclient would warn of a comm for a target it does not know.
        # A frontend that connects later opens its own.
        if not nobody_there(self.session.shell):
            self._attach(create_comm(target_name=TARGET, data=self.summary()))
        self.session.watchers.append(self.publish)
        return self

    def publish(self, message: str = "") -> None:
        """Send the summary with what the panels were told (`message`), which the frontend shows only after
        its own request (a Log out from the status bar)."""
        with self._lock:
            if self._held is not None:
                self._held.append(message)
                return
            comms = list(self.comms)
        summary = {**self.summary(), "message": message}
        for comm in comms:
            with contextlib.suppress(Exception):  # a frontend that went away: its close arrives later
                comm.send(summary)

    def summary(self) -> dict[str, Any]:
        with self.session.lock:
            client, source, held = self.session.client, self.session.source, self.session.held
        if client is None:
            return {"signed_in": False}
        age = self._token_age(client)
        return {
            "signed_in": True,
            "user": client.user.name,
            "email": client.user.email,
            "server": client.url,
            "server_name": client.server.name,
            "from": _FROM.get(source, source),
            "scopes": list(held or ()),
            "token": age.describe() if age is not None else "",
            "warning": (rotation_message(age, client.url) or "") if age is not None else "",
        }

    def _token_age(self, client: Client) -> TokenAge | None:
        known = self._age
        if known is not None and known[0]() is client:
            return known[1]
        with contextlib.suppress(Exception):  # a note nice to have: never in the way of the summary
            age = token_age(client)
            self._age = (weakref.ref(client), age)
            return age
        return None

    def _opened(self, comm: Any, _msg: Any) -> None:
        self._attach(comm)
        with contextlib.suppress(Exception):
            comm.send(self.summary())

    def _attach(self, comm: Any) -> None:
        with self._lock:
            self.comms.append(comm)
        comm.on_msg(self._asked)
        comm.on_close(lambda _msg: self._detach(comm))

    def _detach(self, comm: Any) -> None:
        with self._lock:
            self.comms = [c for c in self.comms if c is not comm]

    def _asked(self, msg: Any) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if not isinstance(data, dict) or data.get("do") != "logout":
            return
        # one summary when it is over, with the last word said (the client's own "Logged out." comes first)
        with self._lock:
            self._held = []
        try:
            error = log_out(self.session)
        finally:
            with self._lock:
                said, self._held = self._held, None
        if error:  # the panels show it; the frontend that asked, too
            self.session.tell_all_error(error)
        self.publish(error or (said[-1] if said else ""))
