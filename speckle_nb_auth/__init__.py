"""Sign in to Speckle from a Jupyter notebook and get an authenticated client in the kernel.

Importing this package is cheap: the client, the widget and the server extension load on first use, so a
kernel that only imports it pays for none of them.
"""

from __future__ import annotations

import importlib

from ._errors import (
    AccessCodeRejected,
    ConfigurationError,
    GraphQLError,
    InvalidServerURL,
    InvalidToken,
    LoginDenied,
    LogoutFailed,
    MissingScope,
    NotSignedIn,
    RefreshRejected,
    SpeckleAuthError,
    SpeckleRefused,
    SpeckleServerError,
    SpeckleUnreachable,
    SsoSessionExpired,
)
from ._version import __version__

# Not `from typing import TYPE_CHECKING`: importing typing alone costs more than the rest of this package.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._client import Client
    from ._login import get_client, login
    from ._revoke import revoke
    from .panel import LoginPanel

__all__ = [
    "AccessCodeRejected",
    "Client",
    "ConfigurationError",
    "GraphQLError",
    "InvalidServerURL",
    "InvalidToken",
    "LoginDenied",
    "LoginPanel",
    "LogoutFailed",
    "MissingScope",
    "NotSignedIn",
    "RefreshRejected",
    "SpeckleAuthError",
    "SpeckleRefused",
    "SpeckleServerError",
    "SpeckleUnreachable",
    "SsoSessionExpired",
    "__version__",
    "get_client",
    "login",
    "revoke",
]

_LAZY = {
    "Client": "._client",
    "login": "._login",
    "get_client": "._login",
    "LoginPanel": ".panel",
    "revoke": "._revoke",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'speckle_nb_auth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .serverext import SpeckleAuthApp

    return [{"module": "speckle_nb_auth", "app": SpeckleAuthApp}]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext speckle_nb_auth` adds `%speckle_login`."""
    from ._magics import register

    register(ipython)
