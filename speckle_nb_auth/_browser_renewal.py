"""A renewal asked of one panel view in the browser, where the kernel has no link to its Jupyter server: the
view asks the extension (which holds the app secret) and answers over the panel's comm.

One view is asked, never all: each would come back with a pair of its own, and all but one would be held by
nobody. A pair that comes back after its wait ended is revoked, for the same reason.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ._errors import RefreshRejected
from ._protocol import TokenPair
from ._public_app import revoke_unheld
from ._session import Session

__all__ = ["NO_ANSWER", "NO_PANEL", "BrowserRenewal", "handling_message"]

NO_PANEL = (
    "This sign-in needs renewing, which goes through the login panel in the browser, and no panel was on "
    "screen to do it: log in again with the panel (run login() if none is shown)."
)
NO_ANSWER = (
    "This sign-in needs renewing through the login panel, which did not answer in time: keep the panel shown "
    "(run login() again), or log in again."
)


@dataclass
class _Asked:
    """A renewal asked of a browser view, waiting for its answer."""

    server: str
    event: threading.Event = field(default_factory=threading.Event)
    pair: TokenPair | None = field(default=None, repr=False)
    error: str | None = None


class BrowserRenewal:
    timeout = 15.0  # seconds a renewal waits for a browser view's answer

    def __init__(self, session: Session) -> None:
        self.session = session
        self._asked: dict[str, _Asked] = {}
        self._late: dict[str, str] = {}  # unanswered renewals: id -> server, to revoke pairs that come late

    def stop(self, *, cancelled: bool) -> None:
        """A renewal is not a login: a sign-in or a Cancel leaves it to its answer."""

    def renew(self, server: str, pair: TokenPair) -> TokenPair:
        """The session's renewer: ask ONE browser view (the latest that said "ready") to renew the pair."""
        target = self._target()
        if target is None:
            raise RefreshRejected(NO_PANEL, code="refresh_unavailable")
        view, view_id = target
        rid = secrets.token_urlsafe(18)
        asked = _Asked(server)
        with self.session.lock:
            self._asked[rid] = asked
        try:
            request = {"type": "refresh", "id": rid, "server_url": server, "refresh_token": pair.refresh_token}
            if view_id:
                request["view"] = view_id
            view.send(request)
            answered = asked.event.wait(self.timeout)
        finally:
            with self.session.lock:
                self._asked.pop(rid, None)
                if not asked.event.is_set():
                    self._late[rid] = server
                    while len(self._late) > 32:
                        self._late.pop(next(iter(self._late)))
        if not answered:
            self.session.tell_all_error(NO_ANSWER)
            raise RefreshRejected(NO_ANSWER, code="refresh_timeout")
        if asked.pair is None:
            text = asked.error or "The sign-in could not be renewed: log in again."
            self.session.tell_all_error(text)
            raise RefreshRejected(text)
        return asked.pair

    def _target(self) -> tuple[Any, str | None] | None:
        if _handling.active:
            return None  # inside a message handler the answer could not arrive while we wait
        for view, view_id in reversed(self.session.ready_views()):
            if getattr(view, "comm", None) is not None:
                return view, view_id
        return None

    def answered(self, rid: str, pair: TokenPair | None, error: str | None) -> None:
        with self.session.lock:
            asked = self._asked.get(rid)
            if asked is not None and not asked.event.is_set():
                asked.pair, asked.error = pair, error
                asked.event.set()
                return
            late = self._late.pop(rid, None)
        if late is not None and pair is not None:
            revoke_unheld(late, pair)  # nobody waits for this pair any more: do not leave it valid


class _Handling(threading.local):
    active = False


_handling = _Handling()


@contextlib.contextmanager
def handling_message() -> Iterator[None]:
    """Marks the current thread as inside a panel's message handler: a renewal asked there could not get its
    answer, which arrives as a message too."""
    _handling.active = True
    try:
        yield
    finally:
        _handling.active = False
