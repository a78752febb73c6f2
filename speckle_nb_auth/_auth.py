"""Bearer authentication for Speckle as an `httpx.Auth`, refreshing once when the server calls the token invalid.

The flow is a generator (httpx's design): send the request with the bearer token; if the answer is Speckle's
403 `Your token is not valid.` and a refresh path exists, refresh and send the request once more. Many threads
may share one client: a lock makes sure that only the first thread to see the stale token refreshes; the others
wait for it and retry with the new token.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator

import httpx

from ._protocol import INVALID_TOKEN_BODY, TokenPair, mask

__all__ = ["Refresher", "SpeckleAuth", "is_invalid_token_response"]

# Given the current pair, return a new one (or raise a typed error with a message for the user).
Refresher = Callable[[TokenPair], TokenPair]


def is_invalid_token_response(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    try:
        return bool(json.loads(response.content) == INVALID_TOKEN_BODY)
    except (ValueError, RecursionError):
        return False


class SpeckleAuth(httpx.Auth):
    requires_response_body = True

    def __init__(
        self,
        pair: TokenPair,
        refresher: Refresher | None = None,
        on_refresh: Callable[[TokenPair, TokenPair], None] | None = None,
        origin: str | None = None,
    ) -> None:
        self._pair = pair
        self._refresher = refresher
        self._on_refresh = on_refresh
        self._origin = httpx.URL(origin) if origin else None
        self._lock = threading.Lock()
        # The last failed refresh: (the token it tried to replace, when, the error). Threads that were waiting
        # for that very attempt share its answer instead of each trying again in turn.
        self._failure: tuple[str, float, Exception] | None = None

    @property
    def pair(self) -> TokenPair:
        return self._pair

    @property
    def can_refresh(self) -> bool:
        # a refresher that renews elsewhere (the hub's, which holds the refresh token) needs none here
        needs_pair = getattr(self._refresher, "needs_refresh_token", True)
        return self._refresher is not None and (bool(self._pair.refresh_token) or not needs_pair)

    def replace(self, pair: TokenPair) -> None:
        with self._lock:
            self._pair = pair

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._origin is not None and (request.url.scheme, request.url.netloc) != (
            self._origin.scheme, self._origin.netloc
        ):
            yield request  # another host (a link found in data, say) never gets the Speckle token
            return
        used = self._pair
        request.headers["Authorization"] = f"Bearer {used.token}"
        response = yield request
        if not is_invalid_token_response(response) or not self.can_refresh:
            return
        current = self.refresh_after(used)
        request.headers["Authorization"] = f"Bearer {current.token}"
        yield request

    def refresh_after(self, used: TokenPair) -> TokenPair:
        """Refresh unless another thread already replaced `used`; return the pair to retry with."""
        asked = time.monotonic()
        with self._lock:
            if self._pair.token != used.token:
                return self._pair
            failure = self._failure
            if failure is not None and failure[0] == used.token and failure[1] >= asked:
                raise failure[2]  # the attempt this thread waited for failed: same answer, no second try
            assert self._refresher is not None
            try:
                new = self._refresher(used)
            except Exception as err:
                self._failure = (used.token, time.monotonic(), err)
                raise
            self._pair = new
            self._failure = None
        if self._on_refresh is not None:
            self._on_refresh(used, new)
        return new

    def __repr__(self) -> str:
        return f"SpeckleAuth(token={mask(self._pair.token)})"
