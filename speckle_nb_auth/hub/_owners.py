"""Who owns what in the hub's login service: each login belongs to the hub user who started it, and each refresh
token the service handed out to the hub user it was handed to. Pure Python and bounded.

Logins live in memory, as the flows themselves do. The refresh tokens' owners can be kept in a small SQLite file,
so that a restarted service still renews its users' sign-ins; a refresh token is kept as its SHA-256 digest only,
so neither the memory nor the file holds anything that signs anyone in.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from collections import OrderedDict

__all__ = ["Owners"]

# Speckle's refresh tokens live 1.577e10 ms (about six months): an owner is not kept longer.
REFRESH_LIFETIME = 1.577e7


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class Owners:
    def __init__(self, path: str | None = None, *, max_flows: int = 10_000, max_refresh_tokens: int = 100_000,
                 max_flows_per_user: int = 20) -> None:
        self.max_flows = max_flows
        self.max_flows_per_user = max_flows_per_user
        self.max_refresh_tokens = max_refresh_tokens
        self._flows: OrderedDict[str, str] = OrderedDict()
        self._by_user: dict[str, OrderedDict[str, None]] = {}
        self._refresh: OrderedDict[str, str] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        self._written = 0
        if path:
            self._db = _open(path)
            self._db.execute("DELETE FROM refresh WHERE at < ?", (time.time() - REFRESH_LIFETIME,))
            self._db.commit()

    def start(self, flow_id: str, user: str) -> list[str]:
        """`user` started the login `flow_id`. Returns the logins to drop: this user's oldest beyond
        `max_flows_per_user` (so one user's many starts end only their own logins), then the oldest of all
        beyond `max_flows`."""
        mine = self._by_user.setdefault(user, OrderedDict())
        mine[flow_id] = None
        self._flows[flow_id] = user
        dropped: list[str] = []
        while len(mine) > self.max_flows_per_user:
            old, _ = mine.popitem(last=False)
            self._flows.pop(old, None)
            dropped.append(old)
        while len(self._flows) > self.max_flows:
            old, owner = self._flows.popitem(last=False)
            theirs = self._by_user.get(owner)
            if theirs is not None:
                theirs.pop(old, None)
                if not theirs:
                    del self._by_user[owner]
            dropped.append(old)
        return dropped

    def of_flow(self, flow_id: str) -> str | None:
        return self._flows.get(flow_id)

    def hand_out(self, refresh_token: str | None, user: str) -> None:
        """`user` now holds `refresh_token`: only they may renew with it here."""
        if not refresh_token:
            return
        digest = _digest(refresh_token)
        if self._db is None:
            _put(self._refresh, digest, user, self.max_refresh_tokens)
            return
        self._db.execute("INSERT OR REPLACE INTO refresh (digest, user, at) VALUES (?, ?, ?)",
                         (digest, user, time.time()))
        self._written += 1
        if self._written % 1000 == 0:  # bounded, without a scan per sign-in
            self._db.execute("DELETE FROM refresh WHERE digest IN (SELECT digest FROM refresh ORDER BY at DESC "
                             "LIMIT -1 OFFSET ?)", (self.max_refresh_tokens,))
        self._db.commit()

    def of_refresh_token(self, refresh_token: str) -> str | None:
        digest = _digest(refresh_token)
        if self._db is None:
            return self._refresh.get(digest)
        row = self._db.execute("SELECT user FROM refresh WHERE digest = ? AND at >= ?",
                               (digest, time.time() - REFRESH_LIFETIME)).fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _private(path: str) -> None:
    """The file and SQLite's `-wal`/`-shm` beside it readable by the service's own user only, also when they
    were made before, or by an older version, with the umask's mode."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass


def _open(path: str) -> sqlite3.Connection:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # created readable by the service's own user only
    os.close(fd)
    _private(path)  # SQLite gives the -wal and -shm it makes the database file's mode
    db = sqlite3.connect(path, isolation_level="DEFERRED")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS refresh (digest TEXT PRIMARY KEY, user TEXT NOT NULL, at REAL NOT NULL)")
    db.execute("CREATE INDEX IF NOT EXISTS refresh_at ON refresh (at)")
    db.commit()
    _private(path)
    return db


def _put(table: OrderedDict[str, str], key: str, user: str, limit: int) -> None:
    table[key] = user
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)
