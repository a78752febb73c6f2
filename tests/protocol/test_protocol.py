"""The sans-I/O protocol layer: URLs, verifiers, requests, and what every answer of the server means."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets

import pytest

from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._errors import (
    AccessCodeRejected,
    GraphQLError,
    InvalidServerURL,
    InvalidToken,
    LogoutFailed,
    MissingScope,
    RefreshRejected,
    SpeckleServerError,
)
from speckle_nb_auth._protocol import Reply

SERVER = "https://speckle.example"


def reply(status: int, body: object) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, raw)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("app.speckle.systems", "https://app.speckle.systems"),
        ("https://app.speckle.systems/", "https://app.speckle.systems"),
        ("HTTPS://App.Speckle.Systems:443", "https://app.speckle.systems"),
        ("  speckle.example:8443/ ", "https://speckle.example:8443"),
        ("127.0.0.1:3000", "http://127.0.0.1:3000"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_server_urls_are_normalised(given: str, expected: str) -> None:
    assert protocol.normalize_server_url(given) == expected


@pytest.mark.parametrize(
    "given",
    ["", "   ", "ftp://speckle.example", "https://user:pw@speckle.example", "https://speckle.example/?x=1",
     "https://speckle.example/#f", "http://speckle.example", "https://", "https://bad host"],
)
def test_unusable_server_urls_are_refused_with_a_message(given: str) -> None:
    with pytest.raises(InvalidServerURL) as info:
        protocol.normalize_server_url(given)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) > 20


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1", "[::1]", "0:0:0:0:0:0:0:1"]
)
def test_loopback_is_localhost_127_8_and_ipv6_one(host: str) -> None:
    assert protocol.is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    ["speckle.localhost", "a.b.localhost", "localhost.", "localhost.example", "127.0.0.1.nip.io", "128.0.0.1",
     "0.0.0.0", "::", "::ffff:127.0.0.1", "::1%lo", "127.1", "10.0.0.1", "", "speckle.example"],
)
def test_nothing_else_is_loopback(host: str) -> None:
    assert not protocol.is_loopback_host(host)


@pytest.mark.parametrize("url", ["http://speckle.localhost:3000", "speckle.localhost:3000"])
def test_a_localhost_subdomain_gets_no_plain_http(url: str) -> None:
    """Its name goes to mDNS or DNS, so a token sent to it in plain http can leave the machine."""
    if "://" in url:
        with pytest.raises(InvalidServerURL, match="plain http"):
            protocol.normalize_server_url(url)
    else:
        assert protocol.normalize_server_url(url) == "https://speckle.localhost:3000"


def test_plain_http_to_another_host_needs_an_explicit_allowance() -> None:
    assert protocol.normalize_server_url("http://speckle.lan", allow_http=True) == "http://speckle.lan"


def test_verifier_is_rfc7636_and_fresh() -> None:
    verifiers = {protocol.make_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for v in verifiers:
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", v)


def test_challenge_methods() -> None:
    v = protocol.make_verifier()
    assert protocol.challenge_for(v) == v
    expected = base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode()
    assert protocol.challenge_for(v, "S256") == expected
    with pytest.raises(ValueError):
        protocol.challenge_for("short")
    with pytest.raises(ValueError):
        protocol.challenge_for(v, "S512")  # type: ignore[arg-type]


def test_authorize_url_has_no_oauth_parameters() -> None:
    url = protocol.authorize_url(SERVER, "abcdef1234", "c" * 43)
    assert url == f"{SERVER}/authn/verify/abcdef1234/{'c' * 43}"


def test_token_endpoint_never_gets_a_bearer_and_secrets_stay_out_of_reprs() -> None:
    call = protocol.exchange_code(SERVER, "app", "s3cr3t-app", "c0de", "v" * 43)
    assert "Authorization" not in call.request.headers
    assert call.request.json == {"appId": "app", "appSecret": "s3cr3t-app", "accessCode": "c0de", "challenge": "v" * 43}
    for shown in (repr(call), repr(call.request)):
        assert "s3cr3t" not in shown and "c0de" not in shown
    assert "Authorization" not in protocol.refresh(SERVER, "a", "s", "r").request.headers
    pair = protocol.TokenPair("a" * 42, "b" * 42)
    assert "a" * 8 not in repr(pair) and "b" * 8 not in repr(pair)


EXCHANGE_ERRORS = [
    ("Access code not found.", "access_code_used"),
    ("Code challenge mismatch. Ensure the same challenge is used for authentication and token exchange.",
     "challenge_mismatch"),
    ("Invalid app secret. Ensure the app secret is correct.", "invalid_app_secret"),
    ("Invalid request: application id does not match.", "app_id_mismatch"),
    ("Access code expired", "access_code_expired"),
    ("Invalid request, insufficient information provided. App Id is required.", "incomplete_request"),
    ("Invalid request, insufficient information provided. Challenge is required.", "incomplete_request"),
]


@pytest.mark.parametrize(("err", "code"), EXCHANGE_ERRORS)
def test_every_exchange_error_is_typed(err: str, code: str) -> None:
    call = protocol.exchange_code(SERVER, "a", "s", "c", "v" * 43)
    with pytest.raises(AccessCodeRejected) as info:
        call.parse(reply(401, {"err": err}))
    assert info.value.code == code
    assert "again" in str(info.value) or "configuration" in str(info.value)


def test_exchange_success_and_garbage() -> None:
    call = protocol.exchange_code(SERVER, "a", "s", "c", "v" * 43)
    pair = call.parse(reply(200, {"token": "t" * 42, "refreshToken": "r" * 42}))
    assert pair == protocol.TokenPair("t" * 42, "r" * 42)
    for bad in (reply(200, b"<html>"), reply(200, {"token": 5}), reply(404, b"Not found")):
        with pytest.raises(SpeckleServerError):
            call.parse(bad)
    with pytest.raises(SpeckleServerError, match="try again"):
        call.parse(reply(502, b"Bad gateway"))


@pytest.mark.parametrize(("err", "code"), [
    ("Invalid request", "refresh_rejected"),
    ("Invalid token", "refresh_rejected"),
    ("Refresh token expired", "refresh_expired"),
])
def test_refresh_errors(err: str, code: str) -> None:
    with pytest.raises(RefreshRejected) as info:
        protocol.refresh(SERVER, "a", "s", "r").parse(reply(401, {"err": err}))
    assert info.value.code == code and "log in again" in str(info.value)


def test_invalid_token_message_says_what_to_do() -> None:
    with pytest.raises(InvalidToken) as info:
        protocol.whoami(SERVER, "t").parse(reply(403, {"error": "Your token is not valid."}))
    assert str(info.value) == (
        f"This Speckle token was revoked or has expired: create a new one at {SERVER}/settings or log in again."
    )


def test_logout_answers() -> None:
    call = protocol.logout(SERVER, "t", "r")
    assert call.request.json == {"token": "t", "refreshToken": "r"}
    assert call.parse(reply(200, {"message": "You have logged out."})) is None
    with pytest.raises(LogoutFailed):
        call.parse(Reply(400, b"Something went wrong while trying to logout."))


def test_missing_scope_names_the_scope() -> None:
    body = {"data": {"activeUser": None}, "errors": [{
        "message": "Your auth token does not have the required scope: tokens:read.",
        "path": ["activeUser", "apiTokens"],
        "extensions": {"code": "FORBIDDEN", "scope": "tokens:read", "statusCode": 403}}]}
    with pytest.raises(MissingScope) as info:
        protocol.parse_graphql(SERVER, reply(200, body))
    assert info.value.scope == "tokens:read" and "'tokens:read'" in str(info.value)


def test_other_graphql_errors() -> None:
    with pytest.raises(GraphQLError, match="Cannot query field"):
        protocol.parse_graphql(SERVER, reply(400, {"errors": [{"message": "Cannot query field 'x'"}]}))


def test_whoami_parses_user_and_server_and_refuses_anonymous() -> None:
    data = {"activeUser": {"id": "u1", "name": "Ada", "email": None, "company": None, "avatar": None},
            "serverInfo": {"name": "Local", "company": None, "canonicalUrl": None, "version": "2.x"}}
    who = protocol.whoami(SERVER, "t").parse(reply(200, {"data": data}))
    assert who.user.name == "Ada" and who.user.email is None and who.server.version == "2.x"
    data["activeUser"] = None
    with pytest.raises(InvalidToken):
        protocol.whoami(SERVER, "t").parse(reply(200, {"data": data}))


def test_a_secret_is_its_text_everywhere_but_its_repr() -> None:
    value = protocol.make_verifier()
    assert isinstance(value, protocol.Secret) and value == str(value) and len(value) == 64
    assert repr(value) == f"'…{value[-4:]}'" and f"{value!r}" == repr(value) and repr([value]) == f"[{value!r}]"
    assert json.loads(json.dumps({"v": value})) == {"v": str(value)} and f"Bearer {value}".endswith(str(value))
    assert repr(protocol.Secret("short")) == "'…'" and repr(protocol.Secret("")) == "None"
    assert isinstance(protocol.challenge_for(value, "S256"), protocol.Secret)


def test_a_token_pair_holds_secrets_and_a_reply_hides_its_body() -> None:
    token, refresh_token = secrets.token_hex(21), secrets.token_hex(21)
    pair = protocol.TokenPair(token, refresh_token)
    assert isinstance(pair.token, protocol.Secret) and isinstance(pair.refresh_token, protocol.Secret)
    assert pair == protocol.TokenPair(token, refresh_token) and protocol.TokenPair(token).refresh_token is None
    reply = protocol.Reply(200, json.dumps({"token": token, "refreshToken": refresh_token}).encode())
    assert token not in repr(reply) and repr(reply) == f"Reply(200, {len(reply.body)} bytes)"
    parsed = protocol.exchange_code("http://127.0.0.1:1", "app", "secret", "code", "v" * 43).parse(reply)
    assert isinstance(parsed.token, protocol.Secret) and parsed == pair


def test_an_address_holding_a_token_is_refused_without_repeating_it() -> None:
    token = "0123456789abcdef" * 2 + "0123456789"
    for typed in (f"ftp://{token}", f"https://{token}?x=1", f"https://{token}:99999", token):
        with pytest.raises(InvalidServerURL) as caught:
            protocol.typed_server_url(typed)
        assert token[8:] not in caught.value.message, typed
