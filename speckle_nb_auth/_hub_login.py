"""Kernels of a hub that logs people in with Speckle (`configure(c, ..., login=True)`) sign in from the hub.

The user's server, and every kernel it starts, holds its JupyterHub API token (`JUPYTERHUB_API_TOKEN`), which
`configure` grants `admin:auth_state!user`: the right to read its own user's sign-in. The kernel asks
SpeckleAuthenticator's route for the current token; when Speckle refuses it, it says so (by digest) and the hub
renews it with the refresh token, which only the hub holds, so the next call works in every running kernel.
The token is never put into the server's environment, where it would go stale and every process could read it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from ._errors import InvalidToken, NotSignedIn, SpeckleUnreachable
from ._protocol import Secret, TokenPair, normalize_server_url
from ._transport import ssl_context

__all__ = ["HUB_LOGIN_ENV", "HubRenewal", "HubToken", "hub_login_configured", "hub_token"]

HUB_LOGIN_ENV = "SPECKLE_HUB_LOGIN"
LOG_IN_AGAIN = "log in to the hub again (File > Log Out, then log in with Speckle)"


@dataclass(frozen=True)
class HubToken:
    server: str
    token: str

    def __repr__(self) -> str:
        return f"HubToken(server={self.server!r})"


def hub_login_configured() -> bool:
    return os.environ.get(HUB_LOGIN_ENV) == "1" and all(
        os.environ.get(name) for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER")
    )


def _route() -> str:
    api = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    return f"{api}/speckle/users/{quote(os.environ['JUPYTERHUB_USER'], safe='')}/token"


def hub_token(refused: str | None = None) -> HubToken:
    """The hub user's current Speckle token; with `refused` (a token Speckle refused), renewed first."""
    headers = {"Authorization": Secret(f"token {os.environ['JUPYTERHUB_API_TOKEN']}")}
    body = {"refused": hashlib.sha256(refused.encode()).hexdigest()} if refused else None
    try:
        with httpx.Client(timeout=30, verify=ssl_context()) as http:
            reply = http.post(_route(), json=body, headers=headers) if body else http.get(_route(), headers=headers)
    except httpx.HTTPError as err:
        raise SpeckleUnreachable(f"The hub could not be reached for your Speckle sign-in ({type(err).__name__}): "
                                 "try again in a moment.") from None
    if reply.status_code == 404:
        raise NotSignedIn(f"You are not logged in to the hub with Speckle (or you logged out): {LOG_IN_AGAIN}.")
    if reply.status_code == 403:
        raise InvalidToken(f"The hub could not renew your Speckle sign-in: {LOG_IN_AGAIN}.")
    try:
        data = reply.json() if reply.status_code == 200 else {}
        server, token = normalize_server_url(str(data["server_url"]), allow_http=True), Secret(str(data["token"]))
    except (ValueError, TypeError, KeyError):
        raise SpeckleUnreachable(f"The hub answered its Speckle sign-in route with HTTP {reply.status_code}: ask "
                                 "its admin to check the hub's log.") from None
    return HubToken(server, token)


class HubRenewal:
    """A client's refresher in such a kernel: the hub renews (it holds the refresh token and the app secret)."""

    needs_refresh_token = False

    def __call__(self, used: TokenPair) -> TokenPair:
        return TokenPair(hub_token(refused=used.token).token)
