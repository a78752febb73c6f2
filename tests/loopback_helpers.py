"""Play Speckle's web frontend after a sign-in with the public connector app: follow an authorize URL the way a
browser would end up on the loopback receiver, without a browser."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from speckle_nb_auth._receiver import LoopbackReceiver


def free_port() -> int:
    """A port free on both loopback addresses just now (for an emulator's connector redirect URL)."""
    with LoopbackReceiver("http://localhost:0") as probe:
        return probe.port


def redirect_for(emu: Any, authorize_url: str, *, user: int = 0) -> str:
    """Where Speckle sends the browser once `user` (signed in on the web) opens `authorize_url`: the app's
    redirect URL with `?access_code=...`, as `GET /auth/accesscode` answers the frontend."""
    _, _, app_id, challenge = urlsplit(authorize_url).path.rsplit("/", 3)
    answer = httpx.get(
        f"{emu.url}/auth/accesscode",
        params={"appId": unquote(app_id), "challenge": unquote(challenge),
                "token": emu.credentials["users"][user]["session_token"], "preventRedirect": "true"},
        trust_env=False,
    )
    answer.raise_for_status()
    return str(answer.json()["redirectUrl"])


def follow(emu: Any, authorize_url: str, *, user: int = 0) -> httpx.Response:
    """Sign in as `user` and load the page the browser is sent back to (the receiver's)."""
    return httpx.get(redirect_for(emu, authorize_url, user=user), trust_env=False, timeout=10)
