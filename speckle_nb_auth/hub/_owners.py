"""Who owns what in the hub's login service: each login belongs to the hub user who started it, and each refresh
token the service handed out to the hub user it was handed to. Pure Python, bounded, in memory.

Refresh tokens are kept as their SHA-256 digests only, so this table holds nothing that signs anyone in.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

__all__ = ["Owners"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Owners:
    def __init__(self, *, max_flows: int = 10_000, max_refresh_tokens: int = 100_000) -> None:
        self.max_flows = max_flows
        self.max_refresh_tokens = max_refresh_tokens
        self._flows: OrderedDict[str, str] = OrderedDict()
        self._refresh: OrderedDict[str, str] = OrderedDict()

    def start(self, flow_id: str, user: str) -> None:
        _put(self._flows, flow_id, user, self.max_flows)

    def of_flow(self, flow_id: str) -> str | None:
        return self._flows.get(flow_id)

    def hand_out(self, refresh_token: str | None, user: str) -> None:
        """`user` now holds `refresh_token`: only they may renew with it here."""
        if refresh_token:
            _put(self._refresh, _digest(refresh_token), user, self.max_refresh_tokens)

    def of_refresh_token(self, refresh_token: str) -> str | None:
        return self._refresh.get(_digest(refresh_token))


def _put(table: OrderedDict[str, str], key: str, user: str, limit: int) -> None:
    table[key] = user
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)
