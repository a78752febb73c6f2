"""Play Speckle's web frontend on the emulator without a browser, as a signed-in user would: `consent` is the user's
click on "Authorize" (what Speckle's consent page asks `GET /auth/accesscode` for, with the user's web session
token); the rest are thin uses of it. Tests that drive the real pages in Chromium use
`support.jupyter_ui.speckle_sign_in` instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._transport import call


def consent(
    emu: Any, challenge: str | None = None, *, authorize_url: str | None = None, app_id: str | None = None,
    user: int = 0,
) -> str:
    """Seeded user `user`, signed in on the web, authorizes app `app_id` (the seeded app unless given) for
    `challenge`, or for the app and challenge an authorize URL names (`<server>/authn/verify/<app>/<challenge>`,
    as a sign-in tab opens it). Returns where Speckle sends the browser back to: the app's redirect URL with
    `?access_code=...`."""
    if authorize_url is not None:
        _, _, named_app, named_challenge = urlsplit(authorize_url).path.rsplit("/", 3)
        app_id, challenge = app_id or unquote(named_app), unquote(named_challenge)
    assert challenge is not None, "a challenge or an authorize URL"
    answer = httpx.get(
        f"{emu.url}/auth/accesscode",
        params={"appId": app_id or emu.credentials["app_id"], "challenge": challenge,
                "token": emu.credentials["users"][user]["session_token"], "preventRedirect": "true"},
        trust_env=False, timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["redirectUrl"])


def code_of(redirect: str) -> str:
    """The access code in the URL Speckle redirects to."""
    return parse_qs(urlsplit(redirect).query)["access_code"][0]


def access_code(emu: Any, challenge: str, *, user: int = 0, app_id: str | None = None) -> str:
    """The code `consent` hands out for `challenge`."""
    return code_of(consent(emu, challenge, app_id=app_id, user=user))


def oauth_pair(emu: Any, *, user: int = 0) -> protocol.TokenPair:
    """A token pair of the seeded app, as the server extension would get it: consent, then the code exchange."""
    creds = emu.credentials
    verifier = protocol.make_verifier()
    code = access_code(emu, protocol.challenge_for(verifier), user=user)
    with httpx.Client(trust_env=False) as http:
        return call(http, protocol.exchange_code(emu.url, creds["app_id"], creds["app_secret"], code, verifier))


def follow(emu: Any, authorize_url: str, *, user: int = 0) -> httpx.Response:
    """Sign in as `user` and load the page the browser is sent back to (a loopback receiver's, say)."""
    return httpx.get(consent(emu, authorize_url=authorize_url, user=user), trust_env=False, timeout=10)


def make_pat(emu: Any, scopes: list[str], *, user: int = 0, lifespan_ms: int | None = None) -> str:
    """A personal access token of seeded user `user` with these scopes, made as the web frontend makes one."""
    spec: dict[str, object] = {"name": "notebook", "scopes": scopes}
    if lifespan_ms is not None:
        spec["lifespan"] = lifespan_ms
    answer = httpx.post(
        f"{emu.url}/graphql",
        headers={"Authorization": f"Bearer {emu.credentials['users'][user]['session_token']}"},
        json={"query": "mutation($t: ApiTokenCreateInput!) { apiTokenCreate(token: $t) }", "variables": {"t": spec}},
        trust_env=False,
    )
    return str(answer.json()["data"]["apiTokenCreate"])
