"""`login()` and `get_client()`: the two calls a notebook or script makes.

In an IPython kernel, `login()` shows the login panel and returns it at once (a cell cannot wait for a
person); the panel injects the `Client` under `name` when someone signs in. Anywhere else (a script, CI, a
terminal IPython) it signs in from the environment, the keyring or a desktop account and returns the `Client`,
or raises `NotSignedIn` saying how to sign in.

The widget is imported only when a panel is made, so importing this module loads no widget library.
"""

from __future__ import annotations

import keyword
import sys
import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import _sources as sources
from ._errors import NotSignedIn
from ._protocol import normalize_server_url

if TYPE_CHECKING:
    from ._client import Client
    from .panel import LoginPanel

__all__ = ["get_client", "login"]

_lock = threading.Lock()
_by_server: dict[str, Client] = {}
_latest: list[Client] = []  # most recent last
_watched: weakref.WeakSet[Client] = weakref.WeakSet()  # clients whose logout unregisters them


def login(
    server: str | None = None,
    name: str = "speckle",
    remember: bool | None = None,
    scopes: Iterable[str] | str | None = None,
) -> LoginPanel | Client:
    """Sign in to Speckle.

    In a Jupyter kernel: show the login panel and return it; once signed in, `name` (default `speckle`) holds
    a ready `Client` in the notebook's namespace. A working credential found without asking (`SPECKLE_TOKEN`,
    a remembered sign-in for the server, a single desktop account) signs in at once.

    Elsewhere: return a `Client` from those same sources, or raise `NotSignedIn`.

    `remember` presets the panel's "Remember me" box (off by default). `scopes`: the scopes the notebook
    needs; a token without them is refused, naming what is missing.
    """
    check_variable_name(name)
    wanted = sources.normalize_scopes(scopes)
    url = normalize_server_url(server) if server is not None else None
    shell = _kernel_shell()
    if shell is None:
        found = sources.sign_in(url, scopes=wanted)
        register(found.client)
        return found.client
    from .panel import LoginPanel

    panel = LoginPanel(server=url, name=name, remember=bool(remember), scopes=wanted, shell=shell)
    panel.show()
    return panel


def get_client(server: str | None = None) -> Client:
    """The signed-in `Client` of this kernel: the one of `server`, or the latest sign-in when None."""
    url = normalize_server_url(server) if server is not None else None
    with _lock:
        if url is None:
            live = [c for c in _latest if not c.closed]
            if live:
                return live[-1]
        else:
            client = _by_server.get(url)
            if client is not None and not client.closed:
                return client
    raise NotSignedIn(
        f"Not signed in to Speckle{f' to {url}' if url else ''} in this kernel. {sources.WAYS_TO_SIGN_IN}"
    )


def check_variable_name(name: Any) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        shown = name[:40] if isinstance(name, str) else type(name).__name__
        raise ValueError(f"{shown!r} cannot be a variable name: use a Python identifier such as 'speckle'.")


# --- the kernel's signed-in clients -------------------------------------------------------------------------


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


def _kernel_shell() -> Any:
    """The IPython shell when running in a Jupyter kernel (ipykernel), else None. IPython is not imported
    here: a process that has not loaded it is not a kernel."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython is no kernel
        return None
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    return shell
