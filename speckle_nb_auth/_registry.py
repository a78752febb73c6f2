"""The kernel's signed-in clients: what `get_client()` returns, per server and latest first."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["latest", "of_server", "register", "unregister"]

_lock = threading.Lock()
_by_server: dict[str, Client] = {}
_latest: list[Client] = []  # most recent last
_watched: weakref.WeakSet[Client] = weakref.WeakSet()  # clients whose logout unregisters them


def register(client: Client) -> None:
    """Make `client` what `get_client()` returns (for its server, and as the latest)."""
    with _lock:
        _by_server[client.url] = client
        if client in _latest:
            _latest.remove(client)
        _latest.append(client)
        first = client not in _watched
        _watched.add(client)
    if first:
        client.on_logout(unregister)


def unregister(client: Client) -> None:
    with _lock:
        if _by_server.get(client.url) is client:
            del _by_server[client.url]
        if client in _latest:
            _latest.remove(client)
        _watched.discard(client)


def latest() -> Client | None:
    with _lock:
        live = [c for c in _latest if not c.closed]
    return live[-1] if live else None


def of_server(url: str) -> Client | None:
    with _lock:
        client = _by_server.get(url)
    return client if client is not None and not client.closed else None
