"""The kernel's link to its Jupyter server at work (`_jupyter_link` finds it): the panels' messages, collected
from the extension's mailbox by a thread of the kernel, so they arrive while a cell runs; a "Log in with
Speckle" the browser started, followed and claimed by the kernel, so the token goes from the extension to the
kernel without the browser; and renewals asked of the extension, which holds the app secret.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._errors import RefreshRejected
from ._jupyter_link import JupyterLink
from ._protocol import TokenPair
from ._public_app import revoke_unheld
from ._session import FLOW_ENDED, Session, View
from .core._wire import masked, message_of, read_claim, read_renewal

__all__ = ["LinkLogins"]

_log = logging.getLogger("speckle_nb_auth.session")

FLOW_LIFETIME = 11 * 60.0  # the extension's 10 minutes, and a little more for the last poll


@dataclass
class _Flow:
    """A "Log in with Speckle" the kernel finishes itself, through its link."""

    id: str
    server: str
    view: weakref.ref[Any]
    deadline: float
    poke: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False


class LinkLogins:
    """What the session does through its link. `start()` begins collecting the mailbox."""

    def __init__(self, session: Session, link: JupyterLink) -> None:
        self.session = session
        self.link = link
        self.mailbox = secrets.token_urlsafe(24)
        self._flows: dict[str, _Flow] = {}
        self._reader: threading.Thread | None = None

    def start(self) -> LinkLogins:
        self._reader = threading.Thread(target=self._read_mailbox, name="speckle-mailbox", daemon=True)
        self._reader.start()
        return self

    def stop(self, *, cancelled: bool) -> None:
        """Someone signed in or pressed Cancel: stop following logins."""
        with self.session.lock:
            for flow in self._flows.values():
                flow.stopped = True
                if cancelled:
                    flow.poke.set()

    # --- the mailbox ----------------------------------------------------------------------------------------

    def _read_mailbox(self) -> None:
        """The mailbox thread: long polls for the panels' messages and hands each to its panel."""
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
        for view in self.session.views():
            if view.panel_id == panel_id:
                view.handle(message)
                return

    # --- logins the browser started, finished here ----------------------------------------------------------

    def track(self, view: View, flow_id: str, server: str) -> None:
        """A browser view opened the login `flow_id`: poll it through the link and claim it when it is done."""
        with self.session.lock:
            for old in self._flows.values():
                old.stopped = True
                old.poke.set()
            flow = _Flow(flow_id, server, weakref.ref(view), time.monotonic() + FLOW_LIFETIME)
            self._flows = {flow_id: flow}
        threading.Thread(target=self._follow, args=(flow,), name="speckle-flow", daemon=True).start()

    def poke(self, flow_id: str) -> None:
        with self.session.lock:
            flow = self._flows.get(flow_id)
        if flow is not None:
            flow.poke.set()

    def _follow(self, flow: _Flow) -> None:
        try:
            error = self._poll_until_claimed(flow)
        except Exception as err:  # noqa: BLE001 - a thread of ours must end in a message, never a traceback
            _log.debug("following a login failed: %s", type(err).__name__)
            error = "Something unexpected went wrong while finishing the sign-in: log in again."
        with self.session.lock:
            if self._flows.get(flow.id) is flow:
                del self._flows[flow.id]
        view = flow.view()
        if view is not None and error:
            view.flow_ended(flow.id, self.session.still_signed_in(error))

    def _poll_until_claimed(self, flow: _Flow) -> str:
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
                        return message_of(state, FLOW_ENDED.get(str(status), FLOW_ENDED["failed"]))
                elif response is not None and response.status_code != 404:  # 404: the tab has not started it
                    return f"Jupyter refused to report on the sign-in (HTTP {response.status_code}): log in again."
                flow.poke.wait(0.5)
                flow.poke.clear()
        return ""

    def _claim(self, http: httpx.Client, flow: _Flow) -> str:
        response = http.post(self.link.url(f"flows/{flow.id}/claim"), json={})
        json_answer = response.headers.get("content-type", "").startswith("application/json")
        data = masked(response.json()) if json_answer else {}  # what a traceback of this frame shows
        claimed = read_claim(data, flow.server) if response.status_code == 200 else None
        if claimed is None:
            return message_of(data, "The token could not be collected: log in again.")
        view = flow.view()
        if view is None:  # the panel is gone: nobody will hold this pair
            revoke_unheld(claimed.server_url, claimed.pair)
            return ""
        view.sign_in_claimed(claimed.server_url, claimed.pair, claimed.app_id)
        return ""

    # --- renewals -------------------------------------------------------------------------------------------

    def renew(self, server: str, pair: TokenPair) -> TokenPair:
        """The session's renewer: the extension renews with the app secret it holds."""
        try:
            response = self.link.post("refresh", {"server_url": server, "refresh_token": pair.refresh_token})
            data = masked(response.json())  # what a traceback of this frame shows
        except (httpx.HTTPError, ValueError):
            raise RefreshRejected(
                "This sign-in needs renewing, and the Jupyter server could not be reached to do it: log in "
                "again.", code="refresh_unavailable"
            ) from None
        renewed = read_renewal(data) if response.status_code == 200 else None
        if renewed is None:
            text = message_of(data, "The sign-in could not be renewed: log in again.")
            self.session.tell_all_error(text)
            raise RefreshRejected(text)
        return renewed
