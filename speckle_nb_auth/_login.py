"""`login()` and `get_client()`: the two calls a notebook or script makes.

In an IPython kernel, `login()` shows the login panel and waits until someone signs in, so the next cell of a
Run All finds `speckle` (`_login_wait`: through the panel where the kernel reaches its Jupyter server's
extension, else with the kernel's own sign-in). It never waits where nobody can answer (nbclient, nbconvert,
a closed tab): it stops with one line saying how to sign in. Anywhere else (a script, CI, a terminal IPython)
it signs in from the environment, the keyring or a desktop account and returns the `Client`, or raises
`NotSignedIn` saying how to sign in.

The widget is imported only when a panel is made, so importing this module loads no widget library.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import _registry as registry
from . import _sources as sources
from ._errors import NotSignedIn
from ._login_wait import not_signed_in, wait_for_panel, wait_in_cell
from ._protocol import normalize_server_url
from ._session import check_variable_name
from ._sessions import parts_of, session_for

if TYPE_CHECKING:
    from ._client import Client
    from .panel import LoginPanel

__all__ = ["check_variable_name", "get_client", "login"]

# The registry's tables, for tests that start each from nothing.
_by_server = registry._by_server
_latest = registry._latest

#: Seconds `login()` gives a panel view to show up before it stops waiting.
VIEW_TIMEOUT = 10.0


def login(
    server: str | None = None,
    name: str = "speckle",
    remember: bool | None = None,
    scopes: Iterable[str] | str | None = None,
    wait: bool = True,
    timeout: float = 300.0,
    paste: bool | None = None,
) -> LoginPanel | Client:
    """Sign in to Speckle.

    In a Jupyter kernel: show the login panel and return it; once signed in, `name` (default `speckle`) holds
    a ready `Client` in the notebook's namespace. A working credential found without asking (`SPECKLE_TOKEN`,
    a remembered sign-in for the server, a single desktop account) signs in at once. Otherwise, with `wait`
    (the default), the cell waits up to `timeout` seconds for someone to sign in with the panel, so a Run
    All goes on only once `name` is there; cancelling, the timeout, or no panel shown raise `NotSignedIn`
    (shown as one line). `wait=False` returns at once.

    Where the kernel cannot hear the panel while a cell runs (no server extension: VS Code, PyCharm, Colab),
    the kernel starts its own sign-in and waits for it: the panel links to Speckle's sign-in page, and the
    browser comes back to a listener of the kernel, or, with `paste=True` (the default in Colab), the address
    the sign-in tab ended on is pasted at a prompt. Interrupting the kernel stops the wait.

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

    cancels = session_for(shell).cancels
    panel = LoginPanel(server=url, name=name, remember=bool(remember), scopes=wanted, shell=shell)
    if not wait or panel.client is not None:
        panel.show()
        return panel
    session = panel.session
    parts = parts_of(session)
    if parts.link is None:
        server_url = url or panel.server_url or sources.default_server()
        wait_in_cell(panel, shell, parts.kernel_login, server_url, timeout, paste=paste)
        return panel
    panel.waiting_until = time.time() + timeout
    panel.show()
    try:
        outcome = wait_for_panel(session, panel, timeout, VIEW_TIMEOUT, cancels=cancels)
    finally:
        panel.waiting_until = 0.0
    if outcome == "signed_in":
        return panel
    raise not_signed_in(outcome, timeout)


def get_client(server: str | None = None) -> Client:
    """The signed-in `Client` of this kernel: the one of `server`, or the latest sign-in when None. In a hub that
    logs people in with Speckle, the hub user's client when this kernel has none yet."""
    url = normalize_server_url(server) if server is not None else None
    client = registry.latest() if url is None else registry.of_server(url)
    if client is None:  # in a hub that logs people in with Speckle, the hub's sign-in is this kernel's
        client = sources.hub_sign_in(url)
        if client is not None:
            register(client)
    if client is not None:
        return client
    raise NotSignedIn(
        f"Not signed in to Speckle{f' to {url}' if url else ''} in this kernel. {sources.WAYS_TO_SIGN_IN}"
    )


register = registry.register
unregister = registry.unregister


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
