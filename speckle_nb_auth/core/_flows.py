"""The logins in progress ("flows"), in memory: pure Python, so every rule here is tested without a server.

A flow is one attempt to log in, started by the panel with an id it chose. Its life:

    pending ──callback with a code──▶ exchanging ──▶ done ──claim──▶ claimed (tokens forgotten)
       │                                   └──────▶ failed
       ├──callback with denied=true──▶ denied
       ├──a newer login from the same browser──▶ superseded
       └──older than `lifetime`──▶ expired     (a done flow expires too: its tokens are dropped)

Speckle hands out several codes for one challenge, so single use is enforced here: only a `pending` flow
may exchange a code, and `begin_exchange` marks it `exchanging` synchronously, so of two callbacks racing on
one event loop only the first gets to await the exchange. Expiry is checked when a flow is read (no timer per
flow); a flow is dropped `lifetime` after it expired, so the panel reads `expired` for a while before the id
becomes unknown, and the oldest flow is dropped when the store is full.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .._protocol import TokenPair

if TYPE_CHECKING:
    from .._public_app import PublicLogin

__all__ = ["FLOW_ID", "Flow", "FlowIdInUse", "FlowStatus", "FlowStore", "is_flow_id"]

FlowStatus = Literal["pending", "exchanging", "done", "failed", "denied", "expired", "superseded"]

# The panel makes ids from crypto.getRandomValues; anything else is refused before it reaches a log or a page.
FLOW_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def is_flow_id(value: str | None) -> bool:
    return value is not None and FLOW_ID.fullmatch(value) is not None


class FlowIdInUse(Exception):
    """A login was started with the id of a flow the store still holds."""


@dataclass(eq=False)
class Flow:
    id: str
    server_url: str
    verifier: str = field(repr=False)
    challenge: str = field(repr=False)
    created: float
    status: FlowStatus = "pending"
    message: str = ""
    error_code: str = ""  # the typed error's code when the flow failed
    user_name: str = ""
    user_email: str = ""
    tokens: TokenPair | None = field(default=None, repr=False)
    claimed: bool = False
    app_id: str = ""  # the app whose code this flow exchanges: a registered one, or the public "sca"
    paste: bool = False  # the code cannot come back here by itself: the panel asks for the page's address
    public: PublicLogin | None = field(default=None, repr=False)  # a public-app login holds its own verifier

    @property
    def account(self) -> str:
        """The Speckle account a done flow signed in, as people know it: "Ada Lovelace (ada@example.org)"."""
        if self.user_name and self.user_email:
            return f"{self.user_name} ({self.user_email})"
        return self.user_name or self.user_email


class FlowStore:
    def __init__(
        self, *, lifetime: float = 600.0, max_flows: int = 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if lifetime <= 0 or max_flows < 1:
            raise ValueError("a flow store needs a positive lifetime and room for at least one flow")
        self.lifetime = lifetime
        self.max_flows = max_flows
        self.clock = clock
        self._flows: OrderedDict[str, Flow] = OrderedDict()

    def __len__(self) -> int:
        return len(self._flows)

    def start(
        self,
        flow_id: str,
        server_url: str,
        verifier: str,
        challenge: str,
        *,
        replaces: str | None = None,
        app_id: str = "",
        public: PublicLogin | None = None,
    ) -> Flow:
        """A new pending flow. `replaces` is the flow the same browser started before (from its cookie): if
        that one is still pending, it is superseded, so one browser has one pending login at a time."""
        if not is_flow_id(flow_id):
            raise ValueError("a flow id is 16-64 characters of A-Z, a-z, 0-9, '_' and '-'")
        self._prune()
        if flow_id in self._flows:
            raise FlowIdInUse(flow_id)
        if replaces is not None:
            previous = self.get(replaces)
            if previous is not None and previous.status == "pending":
                previous.status = "superseded"
                previous.message = "A newer login was started in the same browser, so this one was cancelled."
        while len(self._flows) >= self.max_flows:
            self._flows.popitem(last=False)
        flow = Flow(flow_id, server_url, verifier, challenge, created=self.clock(), app_id=app_id, public=public)
        self._flows[flow_id] = flow
        return flow

    def get(self, flow_id: str) -> Flow | None:
        """The flow, with its expiry applied, or None if it is unknown or was dropped."""
        flow = self._flows.get(flow_id)
        if flow is None:
            return None
        age = self.clock() - flow.created
        if age >= 2 * self.lifetime:
            del self._flows[flow_id]
            return None
        if age >= self.lifetime and flow.status in ("pending", "done") and not flow.claimed:
            unfinished = "its token was collected" if flow.status == "done" else "it was completed"
            flow.status = "expired"
            flow.tokens = None
            flow.message = (
                f"This login was started more than {_minutes(self.lifetime)} ago and expired before "
                f"{unfinished}."
            )
        return flow

    def begin_exchange(self, flow_id: str) -> Flow | None:
        """The flow, now `exchanging`, if it may exchange a code; None if it is unknown or not pending (used,
        expired, superseded). Call it before the first await of the exchange: that makes it single use."""
        flow = self.get(flow_id)
        if flow is None or flow.status != "pending":
            return None
        flow.status = "exchanging"
        return flow

    def succeed(self, flow: Flow, tokens: TokenPair, user_name: str, user_email: str = "") -> None:
        if flow.status != "exchanging":
            return
        flow.status = "done"
        flow.tokens = tokens
        flow.user_name, flow.user_email = user_name, user_email
        flow.message = f"Signed in to Speckle as {flow.account}." if flow.account else "Signed in to Speckle."

    def discard(self, flow_id: str) -> None:
        """Forget a flow at once: one its owner may no longer keep (the hub's limit of logins per user)."""
        self._flows.pop(flow_id, None)

    def stop(self, flow: Flow, code: str, message: str) -> None:
        """End a pending flow before its code came back: it may not send anyone to Speckle's sign-in page (the
        answer would go astray), or the panel cancelled it."""
        if flow.status == "pending":
            flow.status = "failed"
            flow.error_code = code
            flow.message = message

    def fail(self, flow: Flow, code: str, message: str) -> None:
        if flow.status != "exchanging":
            return
        flow.status = "failed"
        flow.error_code = code
        flow.message = message

    def deny(self, flow_id: str) -> Flow | None:
        """The user pressed Deny on Speckle's consent page: the pending flow ends `denied`."""
        flow = self.get(flow_id)
        if flow is None or flow.status != "pending":
            return None
        flow.status = "denied"
        flow.message = "Access was declined on Speckle's consent page, so the notebook was not signed in."
        return flow

    def claim(self, flow_id: str) -> tuple[str, TokenPair] | None:
        """The server URL and tokens of a done flow, once: the tokens are forgotten at once. What the result
        page shows (status, user name) stays until the flow is dropped."""
        flow = self.get(flow_id)
        if flow is None or flow.status != "done" or flow.claimed or flow.tokens is None:
            return None
        tokens, flow.tokens, flow.claimed = flow.tokens, None, True
        return flow.server_url, tokens

    def _prune(self) -> None:
        # Flows are kept in the order they were created, so the ones to drop are at the front.
        now = self.clock()
        while self._flows:
            oldest = next(iter(self._flows.values()))
            if now - oldest.created < 2 * self.lifetime:
                break
            del self._flows[oldest.id]


def _minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 1:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{round(seconds)} seconds"
