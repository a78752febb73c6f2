"""The emulator's view of its traffic: faults to inject into the next requests of a route, and what came in.

Tests use it to play a slow, failing or vanishing server, and to check what a client sent (or that it sent
nothing). Shared by Tornado's thread and the test thread, hence the lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["Fault", "FaultKind", "RequestHeaders", "Traffic"]

FaultKind = Literal["slow", "error", "drop", "sso"]


@dataclass
class Fault:
    """`slow`: wait `delay` seconds, then answer normally; `error`: answer `status` with a plain
    "Internal Server Error"; `drop`: close the connection without an answer; `sso`: answer as Speckle does when
    the user's SSO session for the workspace `workspace` has lapsed (HTTP 401, its GraphQL error). `remaining`
    is how many more requests it hits (None: until cleared), after letting `passing` more requests through
    untouched."""

    kind: FaultKind
    remaining: int | None
    delay: float
    status: int
    passing: int = 0
    workspace: str = "acme"


class RequestHeaders(dict[str, str]):
    """A request's headers with lower-case names; lookups ignore case, as HTTP does."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__((name.lower(), value) for name, value in items)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


class Traffic:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._seen: Counter[str] = Counter()
        self._headers: dict[str, RequestHeaders] = {}

    def inject(
        self,
        route: str,
        kind: str,
        *,
        count: int | None = 1,
        delay: float = 2.0,
        status: int = 502,
        after: int = 0,
        workspace: str = "acme",
    ) -> None:
        """Make the next `count` requests to `route` (a path such as "/auth/token") fail as `kind`, once
        `after` requests have passed; replaces an earlier fault on that route."""
        if kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {kind!r}: use 'slow', 'error', 'drop' or 'sso'")
        if not route.startswith("/"):
            raise ValueError(f"a route is a path such as '/auth/token', not {route!r}")
        if count is not None and count < 1:
            raise ValueError("count is a positive number of requests, or None for 'until cleared'")
        if delay < 0 or not 400 <= status <= 599:
            raise ValueError("delay must be >= 0 and status an HTTP error status (400-599)")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError("after is how many requests pass before the fault: 0 or more")
        with self._lock:
            fault = Fault(kind, count, float(delay), int(status), after, str(workspace))  # type: ignore[arg-type]
            self._faults[route] = fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def arrive(self, path: str, headers: Iterable[tuple[str, str]]) -> Fault | None:
        """Note a request, and return the fault it meets, if any."""
        with self._lock:
            self._seen[path] += 1
            self._headers[path] = RequestHeaders(headers)
            fault = self._faults.get(path)
            if fault is None:
                return None
            if fault.passing:
                fault.passing -= 1
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    del self._faults[path]
            return fault

    def seen(self, route: str) -> int:
        with self._lock:
            return self._seen[route]

    def last_headers(self, route: str) -> RequestHeaders:
        with self._lock:
            return RequestHeaders(self._headers.get(route, {}).items())
