"""Play a user's consent on the emulator without a browser, as its web frontend would (with the session token)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._transport import call


def access_code(emu: Any, challenge: str, *, user: int = 0, app_id: str | None = None) -> str:
    creds = emu.credentials
    answer = httpx.get(
        f"{emu.url}/auth/accesscode",
        params={"appId": app_id or creds["app_id"], "challenge": challenge,
                "token": creds["users"][user]["session_token"], "preventRedirect": "true"},
    )
    answer.raise_for_status()
    return parse_qs(urlsplit(answer.json()["redirectUrl"]).query)["access_code"][0]


def oauth_pair(emu: Any, *, user: int = 0) -> protocol.TokenPair:
    """A token pair of the seeded app, as the server extension would get it."""
    creds = emu.credentials
    verifier = protocol.make_verifier()
    code = access_code(emu, protocol.challenge_for(verifier), user=user)
    with httpx.Client() as http:
        return call(http, protocol.exchange_code(emu.url, creds["app_id"], creds["app_secret"], code, verifier))
