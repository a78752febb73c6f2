"""The emulator answers as `speckle-protocol.md` says a Speckle server does: real loopback HTTP with httpx,
plus the package's own protocol parsers, specklepy's client and the CLI against it."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.processes import as_from_a_terminal, free_port, signal_another_thread

from speckle_nb_auth import _protocol, _transport
from speckle_nb_auth._errors import (
    AccessCodeRejected,
    InvalidToken,
    LogoutFailed,
    MissingScope,
    RefreshRejected,
    SpeckleServerError,
    SpeckleUnreachable,
)
from speckle_nb_auth.emulator import Emulator

REDIRECT = "http://127.0.0.1:9999/cb"
CHALLENGE = "c" * 43
HEX42 = re.compile(r"[0-9a-f]{42}")
INVALID_TOKEN = b'{"error":"Your token is not valid."}'
PAT_SCOPES = ["profile:read", "profile:email", "streams:read", "users:read"]
REFRESH_LIFESPAN = 1.577e10 / 1000  # seconds: the server's refresh token lifespan
CREATE_TOKEN = "mutation($t: ApiTokenCreateInput!) { apiTokenCreate(token: $t) }"
REVOKE_TOKEN = "mutation($t: String!) { apiTokenRevoke(token: $t) }"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(redirect_url=REDIRECT) as emulator:
        yield emulator


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=5) as client:
        yield client


@pytest.fixture
def browser(emu: Emulator) -> Iterator[httpx.Client]:
    """A client that keeps cookies and shows redirects instead of following them."""
    with httpx.Client(base_url=emu.url, timeout=5, follow_redirects=False) as client:
        yield client


# --- helpers ------------------------------------------------------------------------------------------------


def code_for(
    http: httpx.Client, emu: Emulator, *, challenge: str = CHALLENGE, app_id: str | None = None
) -> str:
    """What the web frontend does on "Authorize": ask for a code with the user's web session token."""
    creds = emu.credentials
    params = {"appId": app_id or creds["app_id"], "challenge": challenge, "token": creds["session_token"],
              "preventRedirect": "true"}
    reply = http.get("/auth/accesscode", params=params)
    assert reply.status_code == 200, reply.text
    code = reply.json()["redirectUrl"].rsplit("?access_code=", 1)[1]
    assert HEX42.fullmatch(code)
    return code


def exchange_body(emu: Emulator, code: str, /, **override: str) -> dict[str, str]:
    creds = emu.credentials
    body = {"appId": creds["app_id"], "appSecret": creds["app_secret"], "accessCode": code}
    return {**body, "challenge": CHALLENGE, **override}


def refresh_body(emu: Emulator, refresh_token: str, /, **override: str) -> dict[str, str]:
    creds = emu.credentials
    body = {"appId": creds["app_id"], "appSecret": creds["app_secret"], "refreshToken": refresh_token}
    return {**body, **override}


def exchange(http: httpx.Client, body: dict[str, str]) -> httpx.Response:
    return http.post("/auth/token", json=body)


def app_login(http: httpx.Client, emu: Emulator) -> dict[str, str]:
    reply = exchange(http, exchange_body(emu, code_for(http, emu)))
    assert reply.status_code == 200, reply.text
    return reply.json()


def created_app_token(http: httpx.Client, emu: Emulator, scopes: list[str]) -> tuple[dict[str, str], str]:
    """A new app with `scopes`, and a token the first user authorized for it."""
    app = emu.create_app("Test app", REDIRECT, scopes)
    code = code_for(http, emu, app_id=app["app_id"])
    reply = exchange(http, exchange_body(emu, code, appId=app["app_id"], appSecret=app["app_secret"]))
    return app, reply.json()["token"]


def gql(http: httpx.Client, query: str, token: str | None = None, **variables: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = variables
    return http.post("/graphql", json=body, headers=headers)


def new_pat(http: httpx.Client, emu: Emulator, scopes: list[str], **extra: Any) -> str:
    token = {"name": "test", "scopes": scopes, **extra}
    reply = gql(http, CREATE_TOKEN, emu.credentials["session_token"], t=token)
    assert reply.status_code == 200 and "errors" not in reply.json(), reply.text
    return reply.json()["data"]["apiTokenCreate"]


def is_valid(http: httpx.Client, token: str) -> bool:
    status = gql(http, "{ serverInfo { name } }", token).status_code
    assert status in (200, 403)
    return status == 200


# --- seeded state -------------------------------------------------------------------------------------------


def test_credentials_hold_fresh_secrets_for_two_users(emu: Emulator) -> None:
    creds = emu.credentials
    assert creds["url"] == emu.url and re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.url)
    assert creds["redirect_url"] == REDIRECT
    assert len(creds["app_id"]) == 10 and len(creds["app_secret"]) == 10
    users = creds["users"]
    assert len(users) >= 2
    assert len({u["email"] for u in users}) == len({u["name"] for u in users}) == len(users)
    assert (creds["pat"], creds["session_token"]) == (users[0]["pat"], users[0]["session_token"])
    secrets = [user[key] for user in users for key in ("pat", "session_token")]
    assert all(HEX42.fullmatch(s) for s in secrets) and len(set(secrets)) == len(secrets)
    with Emulator() as other:
        assert other.credentials["pat"] != creds["pat"]


def test_each_pat_holds_the_documented_scopes_not_tokens_write(emu: Emulator, http: httpx.Client) -> None:
    for user in emu.credentials["users"]:
        reply = gql(http, "{ activeUser { email apiTokens { id scopes } } }", user["session_token"])
        data = reply.json()["data"]["activeUser"]
        assert data["email"] == user["email"]
        assert data["apiTokens"] == [{"id": user["pat"][:10], "scopes": PAT_SCOPES}]


# --- /auth/accesscode ---------------------------------------------------------------------------------------


def test_accesscode_answers_json_or_redirects(emu: Emulator, http: httpx.Client) -> None:
    creds = emu.credentials
    params = {"appId": creds["app_id"], "challenge": CHALLENGE, "token": creds["session_token"]}
    expected = re.escape(REDIRECT) + r"\?access_code=[0-9a-f]{42}"
    as_json = http.get("/auth/accesscode", params={**params, "preventRedirect": "true"})
    assert as_json.status_code == 200 and re.fullmatch(expected, as_json.json()["redirectUrl"])
    redirect = http.get("/auth/accesscode", params=params)
    assert redirect.status_code == 302 and re.fullmatch(expected, redirect.headers["location"])
    # Express's res.redirect writes this body; a real server sends it too.
    assert redirect.text == f"Found. Redirecting to {redirect.headers['location']}"


def test_one_challenge_can_get_several_codes(emu: Emulator, http: httpx.Client) -> None:
    first, second = code_for(http, emu), code_for(http, emu)
    assert first != second
    assert [exchange(http, exchange_body(emu, c)).status_code for c in (first, second)] == [200, 200]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"appId": None}, "appId missing from querystring."),
        ({"appId": "nosuchapp0"}, "App does not exist."),
        ({"challenge": None}, "Missing challenge"),
        ({"token": None}, "Missing token"),
        ({"token": "0" * 42}, "Invalid token"),
        ({"token": "the PAT"}, "Your auth token does not have the required scope: tokens:write."),
    ],
)
def test_accesscode_errors(emu: Emulator, http: httpx.Client, change: dict[str, Any], message: str) -> None:
    creds = emu.credentials
    params = {"appId": creds["app_id"], "challenge": CHALLENGE, "token": creds["session_token"],
              "preventRedirect": "true", **change}
    if params["token"] == "the PAT":
        params["token"] = creds["pat"]
    reply = http.get("/auth/accesscode", params={k: v for k, v in params.items() if v is not None})
    assert (reply.status_code, reply.text) == (400, message)
    assert not reply.headers["content-type"].startswith("application/json")


def test_the_redirect_url_is_glued_literally(emu: Emulator, http: httpx.Client) -> None:
    emu.set_redirect_url("http://127.0.0.1:9999/cb?next=1")
    creds = emu.credentials
    params = {"appId": creds["app_id"], "challenge": CHALLENGE, "token": creds["session_token"],
              "preventRedirect": "1"}
    url = http.get("/auth/accesscode", params=params).json()["redirectUrl"]
    assert url.startswith("http://127.0.0.1:9999/cb?next=1?access_code=")


# --- /auth/token: exchange ----------------------------------------------------------------------------------


def test_exchange_gives_a_working_token_pair(emu: Emulator, http: httpx.Client) -> None:
    pair = app_login(http, emu)
    assert HEX42.fullmatch(pair["token"]) and HEX42.fullmatch(pair["refreshToken"])
    user = gql(http, "{ activeUser { name email } }", pair["token"]).json()["data"]["activeUser"]
    assert user == {"name": "Ada Lovelace", "email": "ada@example.com"}


def test_exchange_accepts_a_form(emu: Emulator, http: httpx.Client) -> None:
    reply = http.post("/auth/token", data=exchange_body(emu, code_for(http, emu)))
    assert reply.status_code == 200 and set(reply.json()) == {"token", "refreshToken"}


Scenario = Callable[[httpx.Client, Emulator], dict[str, str]]


def _used_twice(http: httpx.Client, emu: Emulator) -> dict[str, str]:
    body = exchange_body(emu, code_for(http, emu))
    assert exchange(http, body).status_code == 200
    return body


def _expired(http: httpx.Client, emu: Emulator) -> dict[str, str]:
    body = exchange_body(emu, code_for(http, emu))
    emu.advance_clock(601)
    return body


def _with(**override: str) -> Scenario:
    return lambda http, emu: exchange_body(emu, code_for(http, emu), **override)


def _insufficient(what: str) -> str:
    return f"Invalid request, insufficient information provided. {what} is required."


EXCHANGE_ROWS: list[tuple[str, Scenario, str, str]] = [
    ("used twice", _used_twice, "Access code not found.", "access_code_used"),
    ("unknown", _with(accessCode="0" * 42), "Access code not found.", "access_code_used"),
    ("wrong challenge", _with(challenge="d" * 43),
     "Code challenge mismatch. Ensure the same challenge is used for authentication and token exchange.",
     "challenge_mismatch"),
    ("wrong secret", _with(appSecret="0" * 10),
     "Invalid app secret. Ensure the app secret is correct.", "invalid_app_secret"),
    ("wrong app id", _with(appId="0" * 10),
     "Invalid request: application id does not match.", "app_id_mismatch"),
    ("expired", _expired, "Access code expired", "access_code_expired"),
    ("no app id", _with(appId=""), _insufficient("App Id"), "incomplete_request"),
    ("no secret", _with(appSecret=""), _insufficient("App Secret"), "incomplete_request"),
    ("no code", _with(accessCode=""), _insufficient("Access Code"), "incomplete_request"),
    ("no challenge", _with(challenge=""), _insufficient("Challenge"), "incomplete_request"),
]


@pytest.mark.parametrize(
    ("scenario", "err", "code"), [row[1:] for row in EXCHANGE_ROWS], ids=[row[0] for row in EXCHANGE_ROWS]
)
def test_exchange_errors(emu: Emulator, http: httpx.Client, scenario: Scenario, err: str, code: str) -> None:
    body = {k: v for k, v in scenario(http, emu).items() if v}  # an empty field is left out altogether
    reply = exchange(http, body)
    assert reply.status_code == 401 and reply.json() == {"err": err}
    # The package's parser turns the same answer into its own error code.
    again = scenario(http, emu)
    call = _protocol.exchange_code(
        emu.url, again["appId"], again["appSecret"], again["accessCode"], again["challenge"]
    )
    with pytest.raises(AccessCodeRejected) as caught:
        _transport.call(http, call)
    assert caught.value.code == code


@pytest.mark.parametrize("wrong", [{"challenge": "d" * 43}, {"appSecret": "0" * 10}])
def test_a_wrong_challenge_or_secret_burns_the_code(
    emu: Emulator, http: httpx.Client, wrong: dict[str, str]
) -> None:
    code = code_for(http, emu)
    assert exchange(http, exchange_body(emu, code, **wrong)).status_code == 401
    assert exchange(http, exchange_body(emu, code)).json() == {"err": "Access code not found."}


def test_a_wrong_app_id_leaves_the_code_valid(emu: Emulator, http: httpx.Client) -> None:
    code = code_for(http, emu)
    assert exchange(http, exchange_body(emu, code, appId="0" * 10)).status_code == 401
    assert exchange(http, exchange_body(emu, code)).status_code == 200


def test_a_code_lives_ten_minutes(emu: Emulator, http: httpx.Client) -> None:
    code = code_for(http, emu)
    emu.advance_clock(590)
    assert exchange(http, exchange_body(emu, code)).status_code == 200


def test_s256_mode_hashes_the_verifier() -> None:
    verifier = _protocol.make_verifier()
    challenge = _protocol.challenge_for(verifier, "S256")
    with Emulator(redirect_url=REDIRECT, challenge_method="S256") as emu, \
            httpx.Client(base_url=emu.url, timeout=5) as http:
        creds = emu.credentials
        # Sending the challenge itself proves nothing: the server hashes what it gets.
        code = code_for(http, emu, challenge=challenge)
        reply = exchange(http, exchange_body(emu, code, challenge=challenge))
        assert reply.json()["err"].startswith("Code challenge mismatch")
        code = code_for(http, emu, challenge=challenge)
        call = _protocol.exchange_code(emu.url, creds["app_id"], creds["app_secret"], code, verifier)
        pair = _transport.call(http, call)
        assert _transport.call(http, _protocol.whoami(emu.url, pair.token)).user.name == "Ada Lovelace"


# --- /auth/token: refresh -----------------------------------------------------------------------------------


def test_refresh_gives_a_new_pair_and_the_old_one_keeps_working(emu: Emulator, http: httpx.Client) -> None:
    old = app_login(http, emu)
    reply = exchange(http, refresh_body(emu, old["refreshToken"]))
    assert reply.status_code == 200 and reply.headers["cache-control"] == "no-cache, no-store"
    new = reply.json()
    assert set(new) == {"token", "refreshToken"} and new["token"] != old["token"]
    assert is_valid(http, new["token"]) and is_valid(http, old["token"])
    assert exchange(http, refresh_body(emu, old["refreshToken"])).status_code == 200
    assert exchange(http, refresh_body(emu, new["refreshToken"])).status_code == 200


@pytest.mark.parametrize(
    ("change", "err"),
    [
        ({"appSecret": "0" * 10}, "Invalid request"),
        ({"appId": "0" * 10}, "Invalid request"),
        ({"refreshToken": "garbage"}, "Invalid request"),
        ({"refreshToken": "its id, another secret"}, "Invalid token"),
        ({"refreshToken": ""},
         "Invalid request, insufficient information provided. A valid refresh token is required."),
    ],
)
def test_refresh_errors(emu: Emulator, http: httpx.Client, change: dict[str, str], err: str) -> None:
    pair = app_login(http, emu)
    if change.get("refreshToken") == "its id, another secret":
        change = {"refreshToken": pair["refreshToken"][:10] + "0" * 32}
    reply = exchange(http, refresh_body(emu, pair["refreshToken"], **change))
    assert reply.status_code == 401 and reply.json() == {"err": err}


def test_a_refresh_token_lives_as_long_as_on_the_server(emu: Emulator, http: httpx.Client) -> None:
    first, second = app_login(http, emu), app_login(http, emu)
    emu.advance_clock(REFRESH_LIFESPAN - 3600)
    assert exchange(http, refresh_body(emu, first["refreshToken"])).status_code == 200
    emu.advance_clock(7200)
    reply = exchange(http, refresh_body(emu, second["refreshToken"]))
    assert reply.status_code == 401 and reply.json() == {"err": "Refresh token expired"}
    creds = emu.credentials
    call = _protocol.refresh(emu.url, creds["app_id"], creds["app_secret"], first["refreshToken"])
    with pytest.raises(RefreshRejected) as caught:
        _transport.call(http, call)
    assert caught.value.code == "refresh_expired"


# --- Speckle's built-in public apps (speckle-protocol.md section 5) ----------------------------------------

CONNECTOR_SCOPES = ["streams:read", "streams:write", "profile:read", "profile:email", "users:read", "users:invite"]
APP_QUERY = "query($id: String!) { app(id: $id) { id name redirectUrl trustByDefault public scopes { name } } }"


def test_the_connector_app_is_public_and_answers_as_a_real_server(http: httpx.Client) -> None:
    reply = gql(http, APP_QUERY, id="sca")  # anonymous: the query is public
    assert reply.status_code == 200
    assert reply.json() == {"data": {"app": {
        "id": "sca", "name": "Speckle Connector", "redirectUrl": "http://localhost:29363", "trustByDefault": True,
        "public": True, "scopes": [{"name": name} for name in CONNECTOR_SCOPES],
    }}}


def test_the_web_apps_are_seeded_with_every_scope(emu: Emulator, http: httpx.Client) -> None:
    every = [s["name"] for s in gql(http, "{ serverInfo { scopes { name } } }").json()["data"]["serverInfo"]["scopes"]]
    for app_id, name, redirect in (("spklwebapp", "Speckle Web Manager", emu.url),
                                   ("explorer", "Speckle Explorer", f"{emu.url}/explorer")):
        app = gql(http, APP_QUERY, id=app_id).json()["data"]["app"]
        assert (app["name"], app["redirectUrl"], app["trustByDefault"], app["public"]) == (name, redirect, True, True)
        assert [s["name"] for s in app["scopes"]] == every


def test_a_registered_app_is_not_public(emu: Emulator, http: httpx.Client) -> None:
    app = gql(http, APP_QUERY, id=emu.credentials["app_id"]).json()["data"]["app"]
    assert app["public"] is False
    assert "sca" not in emu.issued_secrets()  # its secret is its id: nothing to leak
    assert emu.credentials["app_secret"] in emu.issued_secrets()


def test_the_connector_signs_in_with_its_public_secret_on_a_port_of_the_tests_choice() -> None:
    port = free_port()
    with Emulator(connector_redirect_url=f"http://localhost:{port}") as emu, \
            httpx.Client(base_url=emu.url, timeout=5, follow_redirects=False) as http:
        creds = emu.credentials
        assert creds["connector_redirect_url"] == f"http://localhost:{port}"
        app = _transport.call(http, _protocol.app_info(emu.url, "sca"))
        assert app is not None and app["redirectUrl"] == f"http://localhost:{port}"
        params = {"appId": "sca", "challenge": CHALLENGE, "token": creds["session_token"]}
        reply = http.get("/auth/accesscode", params=params)
        assert reply.status_code == 302
        location = reply.headers["location"]
        assert re.fullmatch(rf"http://localhost:{port}\?access_code=[0-9a-f]{{42}}", location)  # no "/" before "?"
        code = location.rsplit("=", 1)[1]
        pair = _transport.call(http, _protocol.exchange_code(emu.url, "sca", "sca", code, CHALLENGE))
        me = _transport.call(http, _protocol.whoami(emu.url, pair.token))
        assert me.user.email == "ada@example.com"  # the token carries the app's profile:email
        renewed = _transport.call(http, _protocol.refresh(emu.url, "sca", "sca", pair.refresh_token or ""))
        assert is_valid(http, renewed.token)
        # Its scopes are its app's: it may write projects but not list the user's tokens.
        with pytest.raises(MissingScope):
            _transport.call(http, _protocol.token_scopes(emu.url, pair.token))


def test_the_public_apps_skip_consent(emu: Emulator, browser: httpx.Client) -> None:
    sign_in(browser, verify_path("sca"), "ada@example.com", password_of(emu, "ada@example.com"))
    for app_id in ("sca", "explorer", "spklwebapp"):
        reply = browser.get(verify_path(app_id))
        assert reply.status_code == 302, app_id
        assert "?access_code=" in reply.headers["location"]
    assert browser.get(verify_path("sca")).headers["location"].startswith("http://localhost:29363?access_code=")


def test_the_connector_code_needs_its_challenge(emu: Emulator, http: httpx.Client) -> None:
    """With a public secret, the challenge is all that makes an intercepted code worthless."""
    code = code_for(http, emu, app_id="sca")
    reply = exchange(http, {"appId": "sca", "appSecret": "sca", "accessCode": code, "challenge": "d" * 43})
    assert reply.json()["err"].startswith("Code challenge mismatch")
    again = exchange(http, {"appId": "sca", "appSecret": "sca", "accessCode": code, "challenge": CHALLENGE})
    assert again.json() == {"err": "Access code not found."}  # the wrong challenge burnt it


# --- the Authorization header -------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/auth/accesscode"),
    ("POST", "/auth/token"),
    ("POST", "/auth/logout"),
    ("POST", "/graphql"),
    ("GET", "/authn/verify/abcdefghij/challenge"),
    ("GET", "/no/such/route"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("prefix", ["Bearer ", ""])
def test_a_bad_token_is_refused_on_every_route(
    http: httpx.Client, method: str, path: str, prefix: str
) -> None:
    reply = http.request(method, path, headers={"Authorization": prefix + "0" * 42}, json={})
    assert reply.status_code == 403
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.content == INVALID_TOKEN
    assert reply.headers["access-control-allow-origin"] == "*"


def test_a_token_lifespan_counts_from_its_creation(emu: Emulator, http: httpx.Client) -> None:
    pat = new_pat(http, emu, ["profile:read"], lifespan=3_600_000)  # one hour
    for _ in range(5):  # used every 12 minutes: each use would restart a lifespan counted from the last one
        emu.advance_clock(12 * 60 - 1)
        assert is_valid(http, pat)
    emu.advance_clock(10)
    assert not is_valid(http, pat)


def test_a_token_past_its_lifespan_is_deleted_when_refused(emu: Emulator, http: httpx.Client) -> None:
    pat = new_pat(http, emu, ["profile:read"], lifespan=60_000)
    emu.advance_clock(61)
    assert not is_valid(http, pat)
    emu.advance_clock(-61)  # gone, not merely expired: a clock set back does not bring it back
    assert not is_valid(http, pat)
    listed = gql(http, "{ activeUser { apiTokens { id } } }", emu.credentials["session_token"])
    assert pat[:10] not in {t["id"] for t in listed.json()["data"]["activeUser"]["apiTokens"]}


def test_a_logged_out_or_revoked_token_is_refused(emu: Emulator, http: httpx.Client) -> None:
    pair = app_login(http, emu)
    pat = new_pat(http, emu, ["profile:read"])
    assert http.post("/auth/logout", json={"token": pair["token"]}).status_code == 200
    revoked = gql(http, REVOKE_TOKEN, emu.credentials["session_token"], t=pat)
    assert revoked.json() == {"data": {"apiTokenRevoke": True}}
    for token in (pair["token"], pat):
        reply = http.post("/auth/token", json=exchange_body(emu, "x"), headers={"Authorization": token})
        assert (reply.status_code, reply.content) == (403, INVALID_TOKEN)
        with pytest.raises(InvalidToken):
            _transport.call(http, _protocol.whoami(emu.url, token))


def test_no_header_is_anonymous(http: httpx.Client) -> None:
    reply = gql(http, "{ activeUser { id } }")
    assert reply.status_code == 200 and reply.json() == {"data": {"activeUser": None}}


# --- CORS ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/auth/token", "/auth/accesscode", "/auth/logout", "/graphql", "/elsewhere"]
)
def test_options_is_204_with_cors(http: httpx.Client, path: str) -> None:
    preflight = {"Origin": "http://example.org", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    reply = http.options(path, headers=preflight)
    assert reply.status_code == 204
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "content-type" in reply.headers["access-control-allow-headers"]


def test_every_answer_allows_any_origin(emu: Emulator, http: httpx.Client) -> None:
    replies = [
        http.post("/auth/token", json={}),
        http.get("/auth/accesscode"),
        http.post("/auth/logout", json={}),
        gql(http, "{ serverInfo { name } }"),
        http.get("/nowhere"),
        http.get(f"/authn/verify/{emu.credentials['app_id']}/{CHALLENGE}"),
    ]
    assert [r.status_code for r in replies] == [401, 400, 400, 200, 404, 200]
    assert all(r.headers["access-control-allow-origin"] == "*" for r in replies)


# --- /auth/logout -------------------------------------------------------------------------------------------


def test_logout_ends_the_token_and_its_refresh_token(emu: Emulator, http: httpx.Client) -> None:
    pair = app_login(http, emu)
    reply = http.post("/auth/logout", json={"token": pair["token"], "refreshToken": pair["refreshToken"]})
    assert reply.status_code == 200 and reply.json() == {"message": "You have logged out."}
    assert not is_valid(http, pair["token"])
    assert exchange(http, refresh_body(emu, pair["refreshToken"])).json() == {"err": "Invalid request"}


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": "0" * 42}, {"refreshToken": "0" * 42}])
def test_logout_refuses_a_missing_or_unknown_token(
    emu: Emulator, http: httpx.Client, body: dict[str, str]
) -> None:
    reply = http.post("/auth/logout", json=body)
    assert (reply.status_code, reply.text) == (400, "Something went wrong while trying to logout.")
    with pytest.raises(LogoutFailed):
        _transport.call(http, _protocol.logout(emu.url, "0" * 42))


def test_logout_of_the_old_pair_after_a_refresh_leaves_the_new_one(emu: Emulator, http: httpx.Client) -> None:
    old = app_login(http, emu)
    new = exchange(http, refresh_body(emu, old["refreshToken"])).json()
    _transport.call(http, _protocol.logout(emu.url, old["token"], old["refreshToken"]))
    assert not is_valid(http, old["token"]) and is_valid(http, new["token"])
    assert exchange(http, refresh_body(emu, old["refreshToken"])).status_code == 401
    assert exchange(http, refresh_body(emu, new["refreshToken"])).status_code == 200


# --- /graphql -----------------------------------------------------------------------------------------------


def test_whoami_with_a_pat(emu: Emulator, http: httpx.Client) -> None:
    query = ("{ activeUser { id name email company avatar bio verified role } "
             "serverInfo { name company canonicalUrl version } }")
    reply = gql(http, query, emu.credentials["pat"])
    assert reply.status_code == 200 and reply.headers["cache-control"] == "no-store"
    data = reply.json()["data"]
    assert data["activeUser"]["id"] == emu.credentials["users"][0]["id"]
    assert data["activeUser"]["email"] == "ada@example.com"
    assert data["serverInfo"]["canonicalUrl"] == emu.url
    me = _transport.call(http, _protocol.whoami(emu.url, emu.credentials["users"][1]["pat"]))
    assert (me.user.name, me.user.email, me.server.url) == ("Grace Hopper", "grace@example.com", emu.url)


def test_email_is_null_without_profile_email(emu: Emulator, http: httpx.Client) -> None:
    reply = gql(http, "{ activeUser { name email } }", new_pat(http, emu, ["profile:read"]))
    assert reply.json() == {"data": {"activeUser": {"name": "Ada Lovelace", "email": None}}}


def test_a_missing_scope_is_a_forbidden_error(emu: Emulator, http: httpx.Client) -> None:
    app_token = app_login(http, emu)["token"]
    reply = gql(http, "{ activeUser { apiTokens { id } } }", app_token)
    assert reply.status_code == 200
    assert reply.json() == {
        "data": {"activeUser": None},
        "errors": [{
            "message": "Your auth token does not have the required scope: tokens:read.",
            "locations": [{"line": 1, "column": 16}],
            "path": ["activeUser", "apiTokens"],
            "extensions": {"code": "FORBIDDEN", "scope": "tokens:read", "statusCode": 403},
        }],
    }
    with pytest.raises(MissingScope) as caught:
        _transport.call(http, _protocol.token_scopes(emu.url, app_token))
    assert caught.value.scope == "tokens:read"


@pytest.mark.parametrize(
    ("scopes", "query", "scope", "data"),
    [
        (["streams:read"], "{ activeUser { id } }", "profile:read", {"activeUser": None}),
        (["profile:read"], "{ activeUser { projects { totalCount } } }", "streams:read",
         {"activeUser": None}),
        (["profile:read"], "{ authenticatedAsApp { id } }", "apps:read", {"authenticatedAsApp": None}),
        (["profile:read"], 'mutation { apiTokenCreate(token: {name: "x", scopes: []}) }', "tokens:write",
         None),
        (["profile:read"], 'mutation { apiTokenRevoke(token: "x") }', "tokens:write", None),
        (["profile:read"], 'mutation { appRevokeAccess(appId: "x") }', "apps:write",
         {"appRevokeAccess": None}),
    ],
)
def test_scopes_are_enforced(
    emu: Emulator, http: httpx.Client, scopes: list[str], query: str, scope: str, data: Any
) -> None:
    reply = gql(http, query, new_pat(http, emu, scopes)).json()
    assert reply["data"] == data
    [error] = reply["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN", "scope": scope, "statusCode": 403}
    assert error["message"] == f"Your auth token does not have the required scope: {scope}."


def test_each_user_has_demo_projects(emu: Emulator, http: httpx.Client) -> None:
    query = "{ activeUser { projects { totalCount items { id name } } } }"
    for user, count in zip(emu.credentials["users"], (3, 2, 1), strict=True):
        projects = gql(http, query, user["pat"]).json()["data"]["activeUser"]["projects"]
        assert projects["totalCount"] == len(projects["items"]) == count


def test_the_app_query_is_public(emu: Emulator, http: httpx.Client) -> None:
    app = _transport.call(http, _protocol.app_info(emu.url, emu.credentials["app_id"]))
    assert app is not None
    # The server lists an app's scopes in the order of its scope table, not the order they were registered in.
    server_order = ["streams:read", "profile:read", "profile:email", "users:read"]
    assert app["redirectUrl"] == REDIRECT and [s["name"] for s in app["scopes"]] == server_order
    reply = gql(http, "query($id: String!) { app(id: $id) { trustByDefault } }", id="nope")
    assert reply.json() == {"data": {"app": None}}


def test_an_app_lists_its_scopes_in_the_servers_order(emu: Emulator, http: httpx.Client) -> None:
    server_order = [s["name"] for s in
                    gql(http, "{ serverInfo { scopes { name } } }").json()["data"]["serverInfo"]["scopes"]]
    registered = ["users:read", "tokens:read", "profile:email", "streams:write", "profile:read", "users:read"]
    app = emu.create_app("Shuffled", REDIRECT, registered)
    scopes = [s["name"] for s in gql(http, APP_QUERY, id=app["app_id"]).json()["data"]["app"]["scopes"]]
    assert scopes == [name for name in server_order if name in registered]
    code = code_for(http, emu, app_id=app["app_id"])
    token = exchange(http, exchange_body(emu, code, appId=app["app_id"], appSecret=app["app_secret"])).json()
    assert _transport.call(http, _protocol.token_scopes(emu.url, token["token"])) is None  # not a PAT


def test_authenticated_as_app(emu: Emulator, http: httpx.Client) -> None:
    app, token = created_app_token(http, emu, ["profile:read", "apps:read"])
    reply = gql(http, "{ authenticatedAsApp { id name } }", token)
    assert reply.json() == {"data": {"authenticatedAsApp": {"id": app["app_id"], "name": "Test app"}}}
    web = gql(http, "{ authenticatedAsApp { id } }", emu.credentials["session_token"])
    assert web.json() == {"data": {"authenticatedAsApp": None}}


def test_api_token_create_list_and_revoke(emu: Emulator, http: httpx.Client) -> None:
    session = emu.credentials["session_token"]
    pat = new_pat(http, emu, ["profile:read", "tokens:read"], lifespan=3_600_000)
    assert HEX42.fullmatch(pat)
    assert _transport.call(http, _protocol.token_scopes(emu.url, pat)) == ["profile:read", "tokens:read"]
    listed = gql(http, "{ activeUser { apiTokens { id name lifespan createdAt lastUsed } } }", session)
    [mine] = [t for t in listed.json()["data"]["activeUser"]["apiTokens"] if t["id"] == pat[:10]]
    assert (mine["name"], mine["lifespan"]) == ("test", 3_600_000)
    assert gql(http, REVOKE_TOKEN, session, t=pat).json() == {"data": {"apiTokenRevoke": True}}
    assert not is_valid(http, pat)
    again = gql(http, REVOKE_TOKEN, session, t=pat).json()
    assert again["data"] is None and again["errors"][0]["message"] == "Did not revoke token"


def test_api_token_create_refuses_tokens_write(emu: Emulator, http: httpx.Client) -> None:
    token = {"name": "x", "scopes": ["profile:read", "tokens:write"]}
    reply = gql(http, CREATE_TOKEN, emu.credentials["session_token"], t=token).json()
    assert reply["data"] is None
    [error] = reply["errors"]
    assert error["message"] == "You can't create a personal access token with the tokens:write scope"
    assert error["extensions"] == {"code": "TOKEN_CREATE_ERROR", "statusCode": 400}


def test_api_token_create_refuses_scopes_the_creator_lacks(emu: Emulator, http: httpx.Client) -> None:
    _, app_token = created_app_token(http, emu, ["profile:read", "tokens:write"])
    reply = gql(http, CREATE_TOKEN, app_token, t={"name": "x", "scopes": ["server:setup"]}).json()
    assert reply["data"] is None
    assert reply["errors"][0]["message"] == "You can't create a token with scopes that you don't have"
    assert reply["errors"][0]["extensions"]["code"] == "TOKEN_CREATE_ERROR"


def test_app_revoke_access(emu: Emulator, http: httpx.Client) -> None:
    first, second = app_login(http, emu), app_login(http, emu)
    query = "mutation($a: String!) { appRevokeAccess(appId: $a) }"
    reply = gql(http, query, emu.credentials["session_token"], a=emu.credentials["app_id"])
    assert reply.json() == {"data": {"appRevokeAccess": True}}
    for pair in (first, second):
        assert not is_valid(http, pair["token"])
        assert exchange(http, refresh_body(emu, pair["refreshToken"])).json() == {"err": "Invalid request"}
    assert is_valid(http, app_login(http, emu)["token"])  # a new authorization works as before
    assert is_valid(http, emu.credentials["pat"])  # PATs do not belong to the app


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ activeUser { id "}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ nope }"}, "GRAPHQL_VALIDATION_FAILED"),
        ({"query": ""}, "BAD_REQUEST"),
        ({"query": "query($id: String!) { app(id: $id) { id } }"}, "BAD_USER_INPUT"),
        ({"query": "{ serverInfo { name } }", "variables": [1]}, "BAD_REQUEST"),
    ],
)
def test_a_query_that_cannot_run_is_400(http: httpx.Client, body: dict[str, Any], code: str) -> None:
    reply = http.post("/graphql", json=body)
    assert reply.status_code == 400 and "data" not in reply.json()
    assert reply.json()["errors"][0]["extensions"]["code"] == code


def test_specklepy_authenticates_with_the_pat(emu: Emulator) -> None:
    from specklepy.api.client import SpeckleClient

    client = SpeckleClient(host=emu.url.removeprefix("http://"), use_ssl=False)
    client.authenticate_with_token(emu.credentials["pat"])
    assert client.account.userInfo.email == "ada@example.com"
    assert client.active_user.get().name == "Ada Lovelace"
    server = client.server.get()
    assert server.name == "Speckle Emulator" and server.workspaces is not None
    assert {"profile:read", "tokens:write"} <= {s["name"] for s in server.scopes or []}
    assert client.server.version()[:2] == (2, 26)
    assert client.active_user.get_projects().total_count == 3


# --- the web frontend ---------------------------------------------------------------------------------------


def xsrf(page: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def verify_path(app_id: str) -> str:
    return f"/authn/verify/{app_id}/{CHALLENGE}"


def password_of(emu: Emulator, email: str) -> str:
    return next(user["password"] for user in emu.credentials["users"] if user["email"] == email)


def sign_in(browser: httpx.Client, path: str, email: str, password: str) -> httpx.Response:
    form = browser.get(path).text
    fields = {"_xsrf": xsrf(form), "action": "signin", "email": email, "password": password}
    return browser.post(path, data=fields)


def test_sign_in_consent_and_authorize(emu: Emulator, browser: httpx.Client) -> None:
    path = verify_path(emu.credentials["app_id"])
    form = browser.get(path)
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    expected = ('name="email"', 'name="password"', ">Sign in</button>", "ada@example.com",
                "grace@example.com")
    for text in expected:
        assert text in form.text
    wrong = sign_in(browser, path, "grace@example.com", "nope")
    assert wrong.status_code == 401 and "Wrong email or password." in wrong.text
    signed_in = sign_in(browser, path, "grace@example.com", password_of(emu, "grace@example.com"))
    assert signed_in.status_code == 303 and signed_in.headers["location"] == path
    consent = browser.get(path)
    expected = ("Grace Hopper", "Speckle notebook login", *PAT_SCOPES, ">Authorize</button>",
                ">Deny</button>")
    for text in expected:
        assert text in consent.text
    authorized = browser.post(path, data={"_xsrf": xsrf(consent.text), "action": "authorize"})
    assert authorized.status_code == 302
    location = authorized.headers["location"]
    assert location.startswith(f"{REDIRECT}?access_code=")
    creds = emu.credentials
    code = location.split("=", 1)[1]
    call = _protocol.exchange_code(emu.url, creds["app_id"], creds["app_secret"], code, CHALLENGE)
    pair = _transport.call(browser, call)
    assert _transport.call(browser, _protocol.whoami(emu.url, pair.token)).user.name == "Grace Hopper"


def test_deny_sends_the_browser_back_denied(emu: Emulator, browser: httpx.Client) -> None:
    path = verify_path(emu.credentials["app_id"])
    sign_in(browser, path, "ada@example.com", password_of(emu, "ada@example.com"))
    denied = browser.post(path, data={"_xsrf": xsrf(browser.get(path).text), "action": "deny"})
    assert (denied.status_code, denied.headers["location"]) == (302, f"{REDIRECT}?denied=true")
    assert denied.text == f"Found. Redirecting to {REDIRECT}?denied=true"
    assert emu.requests_seen("/auth/token") == 0


def test_a_trusted_app_skips_consent(emu: Emulator, browser: httpx.Client) -> None:
    trusted = emu.create_app("Trusted", "http://127.0.0.1:9999/trusted", ["profile:read"], trusted=True)
    path = verify_path(trusted["app_id"])
    sign_in(browser, path, "ada@example.com", password_of(emu, "ada@example.com"))
    reply = browser.get(path)
    assert reply.status_code == 302
    assert reply.headers["location"].startswith("http://127.0.0.1:9999/trusted?access_code=")


def test_the_session_cookie_is_http_only(emu: Emulator, browser: httpx.Client) -> None:
    path = verify_path(emu.credentials["app_id"])
    reply = sign_in(browser, path, "ada@example.com", password_of(emu, "ada@example.com"))
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("speckle_emulator_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_authorize_without_a_session_goes_back_to_sign_in(emu: Emulator, browser: httpx.Client) -> None:
    path = verify_path(emu.credentials["app_id"])
    reply = browser.post(path, data={"_xsrf": xsrf(browser.get(path).text), "action": "authorize"})
    assert (reply.status_code, reply.headers["location"]) == (303, path)


def test_an_unknown_app_and_a_forged_post_are_refused(emu: Emulator, browser: httpx.Client) -> None:
    missing = browser.get(verify_path("nosuchapp0"))
    assert missing.status_code == 404 and "App not found" in missing.text
    credentials = {
        "action": "signin", "email": "ada@example.com", "password": password_of(emu, "ada@example.com")
    }
    forged = browser.post(verify_path(emu.credentials["app_id"]), data=credentials)
    assert forged.status_code == 403 and not browser.cookies.get("speckle_emulator_session")


def test_pages_escape_what_they_show(emu: Emulator, browser: httpx.Client) -> None:
    app = emu.create_app("<script>alert(1)</script>", "http://127.0.0.1:9999/cb?a=<b>", ["profile:read"])
    path = verify_path(app["app_id"])
    assert "<script>alert" not in browser.get(path).text
    sign_in(browser, path, "ada@example.com", password_of(emu, "ada@example.com"))
    consent = browser.get(path).text
    assert "<script>alert" not in consent and "&lt;script&gt;alert(1)&lt;/script&gt;" in consent
    assert "a=&lt;b&gt;" in consent


# --- faults and traffic -------------------------------------------------------------------------------------


def test_an_error_fault_hits_count_requests(emu: Emulator, http: httpx.Client) -> None:
    emu.inject_fault("/auth/token", "error", count=2, status=503)
    replies = [http.post("/auth/token", json={}) for _ in range(3)]
    assert [(r.status_code, r.text) for r in replies[:2]] == [(503, "Internal Server Error")] * 2
    assert replies[2].status_code == 401
    assert emu.requests_seen("/auth/token") == 3
    emu.inject_fault("/graphql", "error")
    with pytest.raises(SpeckleServerError):
        _transport.call(http, _protocol.whoami(emu.url, emu.credentials["pat"]))


def test_a_slow_fault_answers_late(emu: Emulator, http: httpx.Client) -> None:
    emu.inject_fault("/graphql", "slow", delay=0.3)
    started = time.monotonic()
    reply = gql(http, "{ serverInfo { name } }")
    assert time.monotonic() - started >= 0.3 and reply.status_code == 200
    emu.inject_fault("/graphql", "slow", delay=0.5)
    with pytest.raises(httpx.ReadTimeout):
        http.post("/graphql", json={"query": "{ serverInfo { name } }"}, timeout=0.1)


def test_a_drop_fault_closes_the_connection(emu: Emulator, http: httpx.Client) -> None:
    emu.inject_fault("/auth/token", "drop", count=2)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.post("/auth/token", json={})
    creds = emu.credentials
    with pytest.raises(SpeckleUnreachable):
        _transport.call(http, _protocol.refresh(emu.url, creds["app_id"], creds["app_secret"], "0" * 42))
    assert http.post("/auth/token", json={}).status_code == 401


def test_a_fault_can_let_some_requests_pass_first(emu: Emulator, http: httpx.Client) -> None:
    emu.inject_fault("/graphql", "error", count=1, after=2, status=503)
    statuses = [gql(http, "{ serverInfo { name } }").status_code for _ in range(4)]
    assert statuses == [200, 200, 503, 200]


def test_a_fault_without_count_lasts_until_cleared(emu: Emulator, http: httpx.Client) -> None:
    emu.inject_fault("/auth/logout", "error", count=None, status=500)
    assert {http.post("/auth/logout", json={}).status_code for _ in range(3)} == {500}
    emu.clear_faults()
    assert http.post("/auth/logout", json={}).status_code == 400


@pytest.mark.parametrize(
    "bad", [{"kind": "explode"}, {"route": "graphql"}, {"count": 0}, {"status": 200}, {"delay": -1.0},
            {"after": -1}, {"after": True}]
)
def test_inject_fault_checks_its_arguments(emu: Emulator, bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"route": "/graphql", "kind": "error", **bad}
    with pytest.raises(ValueError):
        emu.inject_fault(args.pop("route"), args.pop("kind"), **args)


def test_faults_and_clock_over_http(emu: Emulator, http: httpx.Client) -> None:
    control = {"Authorization": f"Bearer {emu.credentials['control_token']}"}
    spec = {"route": "/graphql", "kind": "error", "count": None, "status": 504}
    assert http.post("/__emulator__/faults", json=spec, headers=control).status_code == 204
    assert [gql(http, "{ serverInfo { name } }").status_code for _ in range(2)] == [504, 504]
    assert http.delete("/__emulator__/faults", headers=control).status_code == 204
    assert gql(http, "{ serverInfo { name } }").status_code == 200
    nope = {"route": "/graphql", "kind": "nope"}
    assert http.post("/__emulator__/faults", json=nope, headers=control).status_code == 400
    code = code_for(http, emu)
    assert http.post("/__emulator__/clock", json={"advance": 601}, headers=control).status_code == 204
    assert exchange(http, exchange_body(emu, code)).json() == {"err": "Access code expired"}
    assert http.post("/__emulator__/clock", json={"advance": "soon"}, headers=control).status_code == 400


CONTROL_CALLS = [
    ("POST", "/__emulator__/faults", {"route": "/graphql", "kind": "error", "count": None}),
    ("DELETE", "/__emulator__/faults", None),
    ("POST", "/__emulator__/clock", {"advance": 10 * 365 * 24 * 3600}),
]


@pytest.mark.parametrize(("method", "path", "body"), CONTROL_CALLS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "the PAT", "a Speckle bearer"])
def test_the_control_api_wants_its_token(
    emu: Emulator, http: httpx.Client, method: str, path: str, body: Any, authorization: str | None
) -> None:
    headers = {"Origin": "http://evil.example"}
    if authorization == "the PAT":
        headers["Authorization"] = emu.credentials["pat"]
    elif authorization == "a Speckle bearer":
        headers["Authorization"] = f"Bearer {emu.credentials['session_token']}"
    elif authorization:
        headers["Authorization"] = authorization
    reply = http.request(method, path, json=body, headers=headers)
    assert reply.status_code == 403 and "control token" in reply.text
    assert "access-control-allow-origin" not in reply.headers
    pat = emu.credentials["pat"]
    assert is_valid(http, pat)  # no fault injected, no clock moved


def test_the_control_api_allows_no_other_origin(emu: Emulator, http: httpx.Client) -> None:
    control = {"Authorization": f"Bearer {emu.credentials['control_token']}"}
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    for path in ("/__emulator__/faults", "/__emulator__/clock"):
        reply = http.options(path, headers=preflight)
        assert reply.status_code in (403, 405)
        assert not any(name.startswith("access-control-") for name in reply.headers)
        answer = http.post(path, json={}, headers={**control, "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in answer.headers
    # A form is what another site can post without a preflight: refused even with the token.
    form = http.post("/__emulator__/clock", data={"advance": "601"}, headers=control)
    assert form.status_code == 400


def test_each_emulator_has_its_own_control_token(emu: Emulator) -> None:
    token = emu.credentials["control_token"]
    assert len(token) >= 32 and token == emu.credentials["control_token"]
    with Emulator() as other:
        assert other.credentials["control_token"] != token


def test_requests_seen_and_their_headers(emu: Emulator, http: httpx.Client) -> None:
    assert emu.requests_seen("/auth/token") == 0 and emu.last_request_headers("/auth/token") == {}
    app_login(http, emu)
    _transport.call(http, _protocol.whoami(emu.url, emu.credentials["pat"]))
    assert emu.requests_seen("/auth/token") == 1
    token_headers = emu.last_request_headers("/auth/token")
    assert "Authorization" not in token_headers and "authorization" not in token_headers
    assert token_headers["Content-Type"] == "application/json"
    assert emu.last_request_headers("/graphql")["authorization"] == f"Bearer {emu.credentials['pat']}"


# --- safe for a class: passwords and the address -------------------------------------------------------------


def test_seeded_passwords_are_new_each_run_unless_given(emu: Emulator, browser: httpx.Client) -> None:
    with Emulator() as other:
        mine = [u["password"] for u in emu.credentials["users"]]
        theirs = [u["password"] for u in other.credentials["users"]]
    assert len(set(mine + theirs)) == 2 * len(mine) and all(len(p) >= 12 for p in mine)
    assert "speckle-ada" not in mine
    path = verify_path(emu.credentials["app_id"])
    assert sign_in(browser, path, "ada@example.com", theirs[0]).status_code == 401
    assert sign_in(browser, path, "ada@example.com", mine[0]).status_code == 303


def test_given_passwords_are_kept() -> None:
    with Emulator(passwords={"grace@example.com": "class-2026"}) as emu, \
            httpx.Client(base_url=emu.url, timeout=5) as browser:
        users = {u["email"]: u["password"] for u in emu.credentials["users"]}
        assert users["grace@example.com"] == "class-2026" and users["ada@example.com"] != "class-2026"
        reply = sign_in(browser, verify_path(emu.credentials["app_id"]), "grace@example.com", "class-2026")
        assert reply.status_code == 303
    for bad in ({"nobody@example.com": "x"}, {"ada@example.com": ""}):
        with pytest.raises(ValueError):
            Emulator(passwords=bad)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org", "speckle.localhost"])
def test_a_non_loopback_host_needs_allow_remote(host: str) -> None:
    with pytest.raises(ValueError, match="anyone on the network"):
        Emulator(host=host)
    Emulator(host=host, allow_remote=True)  # constructed, never started: tests bind loopback only


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1"])
def test_the_cli_refuses_a_non_loopback_host(host: str) -> None:
    run = subprocess.run([sys.executable, "-m", "speckle_nb_auth.emulator", "--host", host],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and run.stdout == ""
    assert "not a loopback address" in run.stderr and "--allow-remote" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_cli_warns_when_remote_is_allowed() -> None:
    from speckle_nb_auth.emulator.__main__ import _parser, _remote_warning

    parser = _parser()
    assert _remote_warning(parser, "127.0.0.1", False) is None
    assert _remote_warning(parser, "::1", True) is None
    warning = _remote_warning(parser, "0.0.0.0", True)
    assert warning is not None and "anyone on the network can sign in" in warning


def test_the_cli_takes_passwords() -> None:
    from speckle_nb_auth.emulator.__main__ import _parser, _passwords

    parser = _parser()
    assert _passwords(parser, ["class"]) == {"ada@example.com": "class", "grace@example.com": "class",
                                             "alan@example.org": "class"}
    assert _passwords(parser, ["a=b", "grace@example.com=g=1"]) == {
        "ada@example.com": "a=b", "grace@example.com": "g=1", "alan@example.org": "a=b"
    }
    with pytest.raises(SystemExit):
        _passwords(parser, ["ada@example.com="])


# --- the CLI ------------------------------------------------------------------------------------------------


CONSOLE_SCRIPT = (
    "import sys; from importlib.metadata import entry_points; "
    "[script] = entry_points(group='console_scripts', name='speckle-emulator'); sys.exit(script.load()())"
)


@pytest.mark.parametrize("args", [["--help"], [], ["--port", "0", "--trusted"]])
@pytest.mark.parametrize("how", ["console script", "python -m"])
def test_the_cli_without_graphql_core_names_the_extra(tmp_path: Path, how: str, args: list[str]) -> None:
    # A sitecustomize that makes `import graphql` fail: the environment of someone without the extra.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['graphql'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    start = ["-c", CONSOLE_SCRIPT] if how == "console script" else ["-m", "speckle_nb_auth.emulator"]
    run = subprocess.run([sys.executable, *start, *args], capture_output=True, text=True, env=env, timeout=60)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == 'speckle-emulator needs graphql-core: pip install "speckle-nb-auth[emulator]"\n'
    probe = subprocess.run([sys.executable, "-c", "import graphql"], capture_output=True, env=env, timeout=60)
    assert probe.returncode != 0  # the block held


@pytest.mark.parametrize(("stop_with", "to"), [(signal.SIGTERM, "process"), (signal.SIGINT, "process"),
                                               (signal.SIGINT, "another-thread")])
def test_the_cli_serves_until_a_signal(tmp_path: Path, stop_with: signal.Signals, to: str) -> None:
    creds_file = tmp_path / "emulator.json"
    command = [sys.executable, "-m", "speckle_nb_auth.emulator", "--port", "0",
               "--credentials-file", str(creds_file), "--redirect-url", REDIRECT,
               "--connector-redirect-url", "http://localhost:1234", "--password", "grace@example.com=class-2026"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=as_from_a_terminal) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            assert ready, "the emulator printed nothing"
            line = proc.stdout.readline()
            match = re.fullmatch(r"Speckle emulator listening on (http://127\.0\.0\.1:\d+)\n", line)
            assert match, line
            assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
            assert [p.name for p in tmp_path.iterdir()] == ["emulator.json"]  # renamed into place, whole
            creds = json.loads(creds_file.read_text())
            assert creds["url"] == match.group(1) and creds["redirect_url"] == REDIRECT
            assert creds["connector_redirect_url"] == "http://localhost:1234"
            with httpx.Client(timeout=5) as http:
                me = _transport.call(http, _protocol.whoami(creds["url"], creds["pat"]))
                control = {"Authorization": f"Bearer {creds['control_token']}"}
                clock = http.post(f"{creds['url']}/__emulator__/clock", json={"advance": 1}, headers=control)
            assert me.user.email == creds["users"][0]["email"] and clock.status_code == 204
            if to == "process":
                proc.send_signal(stop_with)
            else:  # the server's thread gets it: the main thread must still wake to stop
                signal_another_thread(proc.pid, stop_with)
            proc.wait(timeout=10)  # it prints a few lines only: the pipes cannot fill up
        finally:
            if proc.poll() is None:
                proc.kill()
        out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 0, err
    printed = line + out + err
    ada, grace, alan = creds["users"]
    assert grace["password"] == "class-2026" and ada["password"] != "class-2026"
    for user in (ada, grace, alan):  # printed once, for whoever runs the class
        assert printed.count(user["email"]) == 1 and printed.count(user["password"]) == 1
    for secret in (creds["pat"], creds["session_token"], creds["app_secret"], creds["control_token"]):
        assert secret not in printed


def test_the_token_page_the_panel_links_to_makes_a_personal_access_token(emu: Emulator, browser: httpx.Client) -> None:
    """The panel's "Create a token" opens SERVER/settings: it led to a 404 on the emulator."""
    assert "Sign in to make a personal access token" in browser.get("/settings").text
    assert sign_in(browser, "/settings", "ada@example.com", "wrong").status_code == 401
    assert sign_in(browser, "/settings", "ada@example.com", password_of(emu, "ada@example.com")).status_code == 303
    signed = browser.get("/settings")
    assert signed.status_code == 200 and "access tokens" in signed.text and "tokens:write" not in signed.text
    made = browser.post("/settings", data={"_xsrf": xsrf(signed.text), "action": "create", "name": "ci",
                                           "scopes": ["profile:read", "streams:read"]})
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    token = re.search(r'<code id="new-token">([0-9a-f]{42})</code>', made.text).group(1)  # type: ignore[union-attr]
    who = httpx.post(f"{emu.url}/graphql", json={"query": "{ activeUser { name } }"},
                     headers={"Authorization": f"Bearer {token}"}).json()
    assert who["data"]["activeUser"]["name"] == "Ada Lovelace"
    assert token not in browser.get("/settings").text  # shown once


def test_signing_out_at_the_servers_root_lets_the_connector_app_sign_in_as_someone_else(
    emu: Emulator, browser: httpx.Client
) -> None:
    """The panel's "Use another account" opens the server's root to sign out there: the connector app is
    approved at once as whoever is signed in to Speckle in that browser (on a shared machine, the last person)."""
    assert "Not signed in" in browser.get("/").text
    sign_in(browser, verify_path("sca"), "ada@example.com", password_of(emu, "ada@example.com"))
    home = browser.get("/")
    assert home.status_code == 200 and "Ada Lovelace" in home.text and "Sign out" in home.text
    assert browser.get(verify_path("sca")).status_code == 302  # approved at once, as Ada
    assert browser.post("/", data={"_xsrf": xsrf(home.text), "action": "signout"}).status_code == 303
    assert "Not signed in" in browser.get("/").text
    reply = browser.get(verify_path("sca"))
    assert reply.status_code == 200 and "Sign in to Speckle" in reply.text  # asks who, instead of approving Ada
    bob = emu.credentials["users"][1]
    assert sign_in(browser, verify_path("sca"), bob["email"], bob["password"]).status_code == 303
    code = browser.get(verify_path("sca")).headers["location"].rsplit("=", 1)[1]
    with httpx.Client(timeout=5) as http:
        pair = _transport.call(http, _protocol.exchange_code(emu.url, "sca", "sca", code, CHALLENGE))
        assert _transport.call(http, _protocol.whoami(emu.url, pair.token)).user.email == bob["email"]
