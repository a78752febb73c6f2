"""The JSON that crosses between the login routes (extension and hub), the hub relay and the kernel: one
definition of each shape, one reader of each answer. A reader never raises: what it cannot read is None, and
the tokens it reads are `Secret`s, so a traceback of the frame holding them shows no token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._protocol import TokenPair
from .._secret import Secret

__all__ = [
    "SECRET_FIELDS",
    "Claimed",
    "claim_reply",
    "flow_failed",
    "flow_status",
    "masked",
    "message_of",
    "read_body",
    "read_claim",
    "read_renewal",
    "refusal",
    "renewal_reply",
]

# The fields that hold a token or a sign-in code, in a request or an answer: the refresh route's, the claim's,
# the paste-back's, the mailbox's messages from the panel.
SECRET_FIELDS = ("token", "refresh_token", "pasted")


def masked(data: Any) -> Any:
    """`data` with its secret fields held as `Secret`s (a dict), or as it is."""
    if not isinstance(data, dict):
        return data
    return {key: Secret(value) if key in SECRET_FIELDS and isinstance(value, str) else value
            for key, value in data.items()}


def read_body(raw: bytes | None) -> Any:
    """A request's JSON body, masked; None when it is not JSON. Not Tornado's `get_json_body`: that logs a body it
    cannot parse, which may hold a token."""
    try:
        return masked(json.loads(raw or b"null"))
    except (ValueError, RecursionError):  # RecursionError: nested too deep, e.g. [[[[...]]]]
        return None


def refusal(code: str, message: str) -> dict[str, Any]:
    """Every refused JSON request: a stable code and a sentence that is safe to show."""
    return {"error": code, "message": message}


def flow_status(status: str, message: str, *, paste: bool = False, app: str = "") -> dict[str, Any]:
    """`GET flows/<id>`: where a login stands. "exchanging" is told as "pending": the panel keeps waiting either
    way."""
    return {"status": "pending" if status == "exchanging" else status, "message": message, "paste": paste,
            "app": app}


def flow_failed(message: str) -> dict[str, Any]:
    """A login that can no longer finish, told as its status (the kernel reports a flow's message)."""
    return flow_status("failed", message)


def claim_reply(server_url: str, tokens: TokenPair, app_id: str | None) -> dict[str, Any]:
    """`POST flows/<id>/claim`: the token pair of a done login, handed over once. The app id lets the kernel learn
    the token's scopes (an app's token holds its app's)."""
    return {"server_url": server_url, "token": tokens.token, "refresh_token": tokens.refresh_token,
            "app_id": app_id or None}


def renewal_reply(pair: TokenPair) -> dict[str, Any]:
    """`POST refresh`: the renewed pair."""
    return {"token": pair.token, "refresh_token": pair.refresh_token}


@dataclass(frozen=True)
class Claimed:
    server_url: str
    pair: TokenPair = field(repr=False)
    app_id: str | None


def read_claim(data: Any, server_url: str) -> Claimed | None:
    """A claim reply, with `server_url` where it names none; None when it holds no token."""
    data = masked(data)
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        return None
    app_id = data.get("app_id")
    return Claimed(str(data.get("server_url") or server_url),
                   TokenPair(data["token"], data.get("refresh_token") or None),
                   app_id if isinstance(app_id, str) and app_id else None)


def read_renewal(data: Any) -> TokenPair | None:
    """A renewal reply's pair; None when it holds no token."""
    data = masked(data)
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        return None
    return TokenPair(data["token"], data.get("refresh_token") or None)


def message_of(data: Any, fallback: str) -> str:
    """The sentence of a refusal, else `fallback`."""
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) and message else fallback
