"""Speckle's auth wire protocol, without I/O: what to send, and what an answer means.

Each operation is a `Call`: the request to send and the function that turns the server's reply into a value or a
typed error (`_errors`). `_transport` sends a `Call` with httpx, sync for the kernel and async for the server
extension, so both share every rule here. The behaviour encoded is the observed one in `speckle-protocol.md`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from ._errors import (
    AccessCodeRejected,
    GraphQLError,
    InvalidServerURL,
    InvalidToken,
    LogoutFailed,
    MissingScope,
    RefreshRejected,
    SpeckleRefused,
    SpeckleServerError,
)
from ._secret import Secret, mask
from ._workspace_sso import check_sso

__all__ = [
    "INVALID_TOKEN_BODY",
    "Call",
    "ChallengeMethod",
    "HttpRequest",
    "Reply",
    "Secret",
    "ServerInfo",
    "TokenPair",
    "UserInfo",
    "WhoAmI",
    "app_info",
    "authorize_url",
    "challenge_for",
    "exchange_code",
    "graphql",
    "is_loopback_host",
    "logout",
    "make_verifier",
    "mask",
    "normalize_server_url",
    "typed_server_url",
    "refresh",
    "token_scopes",
    "whoami",
    "WHOAMI_QUERY",
    "parse_graphql",
    "parse_whoami",
]

ChallengeMethod = Literal["plain", "S256"]
T = TypeVar("T")

INVALID_TOKEN_BODY = {"error": "Your token is not valid."}
_SCOPE_NAME = re.compile(r"[a-z][a-z-]{0,30}:[a-z][a-z-]{0,30}")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")
_UNRESERVED = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
WHOAMI_QUERY = (
    "query SpeckleNbAuthWhoAmI { activeUser { id name email company avatar } "
    "serverInfo { name company canonicalUrl version } }"
)
_PAT_SCOPES = "query SpeckleNbAuthTokens { activeUser { apiTokens { id scopes } } }"
_APP = "query SpeckleNbAuthApp($id: String!) { app(id: $id) { id name redirectUrl scopes { name } } }"


# --- values ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the body and headers hold secrets
        return f"HttpRequest({self.method} {self.url})"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # a token exchange's answer holds the new pair
        return f"Reply({self.status}, {len(self.body)} bytes)"

    def json(self) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except RecursionError:  # a body nested thousands deep: not an answer of Speckle's
            raise ValueError("JSON nested too deeply") from None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace").strip()


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and the meaning of its answer. `server` names the server in error messages."""

    server: str
    request: HttpRequest
    parse: Callable[[Reply], T]

    def __repr__(self) -> str:
        return f"Call({self.request!r})"


@dataclass(frozen=True)
class TokenPair:
    """A token and its refresh token, both held as `Secret`s, so that a failing line that reads
    `pair.token` shows nothing in a verbose traceback either."""

    token: str
    refresh_token: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", Secret(self.token))
        if self.refresh_token is not None:
            object.__setattr__(self, "refresh_token", Secret(self.refresh_token))

    def __repr__(self) -> str:
        return f"TokenPair(token={mask(self.token)}, refresh_token={mask(self.refresh_token)})"


@dataclass(frozen=True)
class UserInfo:
    id: str
    name: str
    email: str | None = None
    company: str | None = None
    avatar: str | None = None


@dataclass(frozen=True)
class ServerInfo:
    url: str
    name: str
    version: str | None = None
    company: str | None = None
    canonical_url: str | None = None


@dataclass(frozen=True)
class WhoAmI:
    user: UserInfo
    server: ServerInfo


# --- server URLs ------------------------------------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1, and nothing else: names under `.localhost` go to whatever the
    machine's resolver (mDNS, DNS) makes of them, so they are not trusted to stay on this machine."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in _LOOPBACK_V4
    return address == _LOOPBACK_V6


def normalize_server_url(url: str, *, allow_http: bool = False) -> str:
    """`app.speckle.systems` -> `https://app.speckle.systems`; no trailing slash, no query, no credentials.

    Plain http is accepted for loopback addresses (the emulator, a local server) and otherwise only with
    `allow_http=True`, because a token sent over plain http can be read on the way.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidServerURL("No Speckle server address was given: pass one such as 'app.speckle.systems'.")
    raw = url.strip()
    if "://" not in raw:
        host_part = raw.split("/", 1)[0]
        if host_part.startswith("["):  # [::1]:8080
            host_only = host_part[1 : host_part.find("]")]
        else:
            host_only = host_part.rsplit(":", 1)[0] if host_part.count(":") == 1 else host_part
        scheme = "http" if is_loopback_host(host_only) else "https"
        raw = f"{scheme}://{raw}"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as err:
        raise InvalidServerURL(f"'{_shown(url)}' is not a valid server address ({err}).") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidServerURL(
            f"'{_shown(url)}' is not a web address of a Speckle server: use one such as https://app.speckle.systems."
        )
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise InvalidServerURL(
            "A Speckle server address must not contain credentials, a query or a fragment: "
            "give only the address, such as https://app.speckle.systems."
        )
    if not re.fullmatch(r"[a-z0-9.\-:\[\]]+", host if ":" not in host else f"[{host}]"):
        raise InvalidServerURL(f"'{_shown(url)}' has an invalid host name.")
    if ":" not in host and not _usable_host(host):
        raise InvalidServerURL(f"'{_shown(url)}' has an invalid host name.")
    if scheme == "http" and not allow_http and not is_loopback_host(host):
        raise InvalidServerURL(
            f"'{_shown(url)}' uses plain http, which would send your token unencrypted: use https "
            "(plain http is only accepted for addresses on this machine)."
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def _usable_host(host: str) -> bool:
    """A name the resolver can look up (labels of 1-63 characters, as IDNA encoding checks first), and, when it
    is written as four dotted numbers, a valid IPv4 address (httpx refuses others)."""
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    if re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
    return True


def typed_server_url(value: str) -> str:
    """A server address a person typed (the panel's field, the terminal's argument): `normalize_server_url`,
    after refusing what is no server on a network. No dot and no port (and not `localhost`) is more likely a
    token typed in the wrong place than a host: it is never echoed, and nothing is sent to it."""
    raw = value.strip() if isinstance(value, str) else ""
    if raw and not any(ch in raw for ch in ".:[") and raw.lower() != "localhost":
        raise InvalidServerURL(
            "That is not a Speckle server address (it has no dot and no port): give one such as "
            "app.speckle.systems or http://localhost:3000."
        )
    return normalize_server_url(value)


_TOKEN_LIKE = re.compile(r"[0-9a-fA-F]{32,}")


def _shown(value: str, limit: int = 80) -> str:
    """A user-supplied value, cut short and stripped of control characters, for an error message; a run of
    hexadecimal as long as a token's is never repeated."""
    clean = _TOKEN_LIKE.sub("…", "".join(ch for ch in value if ch.isprintable()))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


# --- the authorization-code flow ---------------------------------------------------------------------------------


def make_verifier() -> Secret:
    """An RFC 7636 code verifier: 64 unreserved characters from `secrets`."""
    return Secret(secrets.token_urlsafe(48))


def challenge_for(verifier: str, method: ChallengeMethod = "plain") -> Secret:
    """The challenge that goes into the verify URL. Speckle servers compare it as plain text (`plain`);
    Speckle's docs describe `S256`, BASE64URL(SHA256(verifier)) without padding."""
    if not _UNRESERVED.match(verifier):
        raise ValueError("a code verifier is 43-128 unreserved characters (RFC 7636)")
    if method == "plain":
        return Secret(verifier)
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return Secret(base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))
    raise ValueError(f"unknown challenge method {method!r}: use 'plain' or 'S256'")


def authorize_url(server: str, app_id: str, challenge: str) -> str:
    """Where the browser goes to sign in: Speckle takes no state, scope or redirect_uri parameters."""
    return f"{server}/authn/verify/{quote(app_id, safe='')}/{quote(challenge, safe='')}"


def exchange_code(server: str, app_id: str, app_secret: str, access_code: str, verifier: str) -> Call[TokenPair]:
    """Trade an access code for a token pair. The verifier is sent as `challenge`: under `plain` it is the
    challenge, under `S256` the server hashes it. No Authorization header: Speckle checks one before the
    handler and would refuse the exchange for a stale bearer."""
    body = {"appId": app_id, "appSecret": Secret(app_secret), "accessCode": Secret(access_code),
            "challenge": Secret(verifier)}
    return Call(server, HttpRequest("POST", f"{server}/auth/token", body), lambda r: _parse_exchange(server, r))


def refresh(server: str, app_id: str, app_secret: str, refresh_token: str) -> Call[TokenPair]:
    body = {"appId": app_id, "appSecret": Secret(app_secret), "refreshToken": Secret(refresh_token)}
    return Call(server, HttpRequest("POST", f"{server}/auth/token", body), lambda r: _parse_refresh(server, r))


def logout(server: str, token: str, refresh_token: str | None = None) -> Call[None]:
    body: dict[str, str] = {"token": Secret(token)}
    if refresh_token:
        body["refreshToken"] = Secret(refresh_token)
    return Call(server, HttpRequest("POST", f"{server}/auth/logout", body), lambda r: _parse_logout(server, r))


def graphql(
    server: str, token: str | None, query: str, variables: Mapping[str, Any] | None = None
) -> Call[dict[str, Any]]:
    headers = {"Authorization": Secret(f"Bearer {token}")} if token else {}
    body: dict[str, Any] = {"query": query}
    if variables:
        body["variables"] = dict(variables)
    return Call(server, HttpRequest("POST", f"{server}/graphql", body, headers), lambda r: parse_graphql(server, r))


def whoami(server: str, token: str) -> Call[WhoAmI]:
    base = graphql(server, token, WHOAMI_QUERY)
    return Call(server, base.request, lambda r: parse_whoami(server, parse_graphql(server, r)))


def app_info(server: str, app_id: str) -> Call[dict[str, Any] | None]:
    """The public facts of an app (name, registered redirect URL, scopes); anonymous."""
    base = graphql(server, None, _APP, {"id": app_id})
    return Call(server, base.request, lambda r: parse_graphql(server, r).get("app"))


def token_scopes(server: str, token: str) -> Call[list[str] | None]:
    """A personal access token's scopes, read from the user's token list (needs `tokens:read`); None when
    the token is not listed there (an app token: its scopes are its app's, see `app_info`)."""
    base = graphql(server, token, _PAT_SCOPES)
    token_id = token[:10]  # the token's public id; the parser keeps nothing secret

    def parse(reply: Reply) -> list[str] | None:
        user = parse_graphql(server, reply).get("activeUser") or {}
        for entry in user.get("apiTokens") or []:
            if isinstance(entry, dict) and entry.get("id") == token_id:
                return [str(s) for s in entry.get("scopes") or []]
        return None

    return Call(server, base.request, parse)


# --- answers -----------------------------------------------------------------------------------------------------

_EXCHANGE_ERRORS: dict[str, tuple[str, str]] = {
    "Access code not found.": (
        "access_code_used",
        "Speckle did not accept the sign-in code: it was already used or is unknown. Start the login again.",
    ),
    "Code challenge mismatch. Ensure the same challenge is used for authentication and token exchange.": (
        "challenge_mismatch",
        "Speckle refused the sign-in because its challenge did not match. Start the login again; if it keeps "
        "failing, check the challenge method in the Jupyter configuration (Speckle servers use 'plain').",
    ),
    "Invalid app secret. Ensure the app secret is correct.": (
        "invalid_app_secret",
        "Speckle refused the app secret configured for this server: ask whoever runs this Jupyter server to "
        "check the app's secret in its configuration.",
    ),
    "Invalid request: application id does not match.": (
        "app_id_mismatch",
        "Speckle says the sign-in code belongs to another app: ask whoever runs this Jupyter server to check "
        "the app id in its configuration.",
    ),
    "Access code expired": (
        "access_code_expired",
        "The sign-in took too long and its code expired (codes live 10 minutes): start the login again.",
    ),
}


def _error_field(reply: Reply, key: str) -> str | None:
    try:
        value = reply.json().get(key)
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def _check_common(server: str, reply: Reply) -> None:
    """Answers that mean the same on every route."""
    if reply.status == 403 and _error_field(reply, "error") == INVALID_TOKEN_BODY["error"]:
        raise InvalidToken(
            f"This Speckle token was revoked or has expired: create a new one at {server}/settings "
            "or log in again."
        )
    if reply.status >= 500:
        raise SpeckleServerError(
            f"The Speckle server at {server} had an internal error (HTTP {reply.status}): try again in a moment; "
            "if it keeps happening, the server may be down."
        )


def _unexpected(server: str, reply: Reply) -> SpeckleServerError:
    return SpeckleServerError(
        f"The server at {server} answered in a way a Speckle server does not (HTTP {reply.status}): "
        "check that the address is a Speckle server."
    )


def _token_pair(server: str, reply: Reply) -> TokenPair:
    """The pair in a token answer; no line here holds it as plain text where it could raise."""
    try:
        fields = _secret_fields(reply.json(), "token", "refreshToken")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise _unexpected(server, reply) from None
    if fields is None or not fields[0]:
        raise _unexpected(server, reply)
    return TokenPair(fields[0], fields[1] or None)


def _secret_fields(data: Any, *names: str) -> tuple[Secret, ...] | None:
    """`data[name]` for each name, as `Secret`s; None when one is not a string."""
    values = tuple(data[name] for name in names)
    if not all(isinstance(value, str) for value in values):
        return None
    return tuple(Secret(value) for value in values)


def _parse_exchange(server: str, reply: Reply) -> TokenPair:
    _check_common(server, reply)
    if reply.status == 200:
        return _token_pair(server, reply)
    if reply.status == 401:
        err = _error_field(reply, "err") or ""
        if err in _EXCHANGE_ERRORS:
            code, message = _EXCHANGE_ERRORS[err]
            raise AccessCodeRejected(message, code=code)
        if err.startswith("Invalid request, insufficient information provided."):
            raise AccessCodeRejected(
                "The sign-in could not be completed: the request to Speckle was incomplete. Start the login "
                "again; if it keeps failing, check the app's id and secret in the Jupyter configuration.",
                code="incomplete_request",
            )
        raise AccessCodeRejected(f"Speckle refused the sign-in ({_shown(err) or 'no reason given'}): start the "
                                 "login again.")
    raise _unexpected(server, reply)


def _parse_refresh(server: str, reply: Reply) -> TokenPair:
    _check_common(server, reply)
    if reply.status == 200:
        return _token_pair(server, reply)
    if reply.status == 401:
        if _error_field(reply, "err") == "Refresh token expired":
            raise RefreshRejected(
                "This sign-in is too old to renew (refresh tokens live about 6 months): log in again.",
                code="refresh_expired",
            )
        raise RefreshRejected(
            "Speckle no longer accepts this sign-in's refresh token (access was revoked, or the app changed): "
            "log in again."
        )
    raise _unexpected(server, reply)


def _parse_logout(server: str, reply: Reply) -> None:
    _check_common(server, reply)
    if reply.status == 200:
        return None
    if reply.status == 400:
        raise LogoutFailed(
            f"{server} did not know this token (it was already logged out or revoked): nothing more to do."
        )
    raise _unexpected(server, reply)


def parse_graphql(server: str, reply: Reply) -> dict[str, Any]:
    """`data` of a GraphQL answer; a missing scope becomes `MissingScope`, any other error `GraphQLError`."""
    _check_common(server, reply)
    try:
        payload = reply.json()
    except (ValueError, UnicodeDecodeError):
        raise _unexpected(server, reply) from None
    check_sso(server, payload)
    if not isinstance(payload, dict) or reply.status not in (200, 400):
        raise _unexpected(server, reply)
    errors = payload.get("errors")
    if errors:
        if not isinstance(errors, list):
            raise _unexpected(server, reply)
        for error in errors:
            ext = error.get("extensions") if isinstance(error, dict) else None
            if isinstance(ext, dict) and ext.get("code") == "FORBIDDEN" and isinstance(ext.get("scope"), str):
                # Only a scope-shaped name is repeated: a message never echoes arbitrary server text.
                scope = ext["scope"] if _SCOPE_NAME.fullmatch(ext["scope"]) else "unknown"
                raise MissingScope(
                    f"This Speckle token lacks the '{scope}' permission this request needs: sign in with an app "
                    f"or a personal access token that has it (tokens are made at {server}/settings).",
                    scope=scope,
                )
        messages = "; ".join(
            _shown(str(e.get("message", "unknown error")), 200) for e in errors if isinstance(e, dict)
        )
        raise GraphQLError(f"Speckle answered the query with an error: {messages or 'unknown error'}", errors=errors)
    data = payload.get("data")
    if not isinstance(data, dict):
        raise _unexpected(server, reply)
    return data


def parse_whoami(server: str, data: dict[str, Any]) -> WhoAmI:
    user = data.get("activeUser")
    info = data.get("serverInfo")
    if not isinstance(user, dict) or not user.get("id"):
        raise InvalidToken(
            f"{server} did not recognise a user for this token: create a new token at {server}/settings "
            "or log in again."
        )
    if not isinstance(info, dict):
        raise SpeckleRefused(f"{server} did not describe itself: check that the address is a Speckle server.")

    def text(mapping: dict[str, Any], key: str) -> str | None:
        value = mapping.get(key)
        return str(value) if value is not None else None

    return WhoAmI(
        user=UserInfo(
            id=str(user["id"]),
            name=text(user, "name") or "",
            email=text(user, "email"),
            company=text(user, "company"),
            avatar=text(user, "avatar"),
        ),
        server=ServerInfo(
            url=server,
            name=text(info, "name") or server,
            version=text(info, "version"),
            company=text(info, "company"),
            canonical_url=text(info, "canonicalUrl"),
        ),
    )
