"""The one-shot messages between the panel's two halves, checked before anything acts on them.

Browser -> kernel (`model.send({type, ...})`, delivered to `on_msg` as `(widget, content, buffers)`):

    ready           {view}                      a view of the panel is shown in a browser (`view`: its id)
    pat             {server, token}             sign in with a personal access token
    oauth           {server_url, token, refresh_token, app_id}   the pair claimed from the server extension
    desktop         {index}                     sign in with the desktop account listed at `index`
    logout                                      log out (forget, remove the variable; revoke a token made here)
    revoke_kept                                 "Also revoke it on Speckle": the token Log out kept valid
    cancel                                      the person gave up waiting for "Log in with Speckle"
    flow            {flow, server}              a login tab was opened: the kernel follows and claims it
    flow_done       {flow}                      the result page said that login ended: look now
    kernel_login    {flow, server?}             no extension here: the kernel signs in with the public app
    paste           {flow, pasted}              the address the sign-in tab ended on, for the kernel's login
    remember_file                               no keyring here: keep the sign-in in a 0600, git-ignored .env
    refreshed       {id, token, refresh_token}  the answer to a kernel `refresh` request
    refresh_failed  {id, message}               the same, when the extension could not refresh

Kernel -> browser (`widget.send`):

    refresh         {id, server_url, refresh_token, view?}   please renew through the extension's refresh
                                                      route (only the view named, when one is)
    flow_ended      {flow}                      the login the kernel followed ended without a sign-in
    authorize       {flow, url, paste}          open `url` in the sign-in tab; `paste`: the answer cannot come
                                                      back by itself, ask for the address the tab ends on

Through the extension's mailbox (when the panel has one) the browser's messages also carry `panel`, the
panel's id, so the session hands each to its panel.

Unknown types and content that is not an object are ignored; a known type with bad fields raises `BadMessage`,
whose message is safe to show (it never quotes a token).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .._errors import InvalidServerURL, SpeckleAuthError
from .._protocol import Secret, TokenPair, typed_server_url
from ..core._wire import masked

__all__ = [
    "BadMessage",
    "Cancel",
    "Desktop",
    "FlowDone",
    "FlowStarted",
    "KernelLogin",
    "Paste",
    "RememberFile",
    "Logout",
    "OAuth",
    "Pat",
    "Ready",
    "RefreshFailed",
    "Refreshed",
    "parse",
    "safe_text",
]

MAX_TOKEN = 512  # Speckle tokens are 42 characters: anything far longer is not one
MAX_URL = 2048
MAX_TEXT = 300
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_FLOW_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_SPECKLE_TOKEN = re.compile(r"[0-9a-f]{42}")
_SECRETISH = re.compile(r"[A-Za-z0-9_-]{24,}")
_EXAMPLE = "enter one such as https://app.speckle.systems"


class BadMessage(SpeckleAuthError):
    code = "bad_message"


_APP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

@dataclass(frozen=True)
class Ready:
    view: str | None = None


@dataclass(frozen=True)
class Pat:
    server: str | None
    token: str = field(repr=False)


@dataclass(frozen=True)
class OAuth:
    server: str
    pair: TokenPair = field(repr=False)
    app_id: str | None = None


@dataclass(frozen=True)
class Desktop:
    index: int


@dataclass(frozen=True)
class Logout:
    pass


@dataclass(frozen=True)
class RevokeKept:
    pass


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class FlowStarted:
    flow: str
    server: str


@dataclass(frozen=True)
class FlowDone:
    flow: str


@dataclass(frozen=True)
class KernelLogin:
    flow: str
    server: str | None  # None: the kernel's default server


@dataclass(frozen=True)
class RememberFile:
    pass


@dataclass(frozen=True)
class Paste:
    flow: str
    pasted: str = field(repr=False)


@dataclass(frozen=True)
class Refreshed:
    id: str
    pair: TokenPair = field(repr=False)


@dataclass(frozen=True)
class RefreshFailed:
    id: str
    message: str


Message = (
    Ready | Pat | OAuth | Desktop | Logout | RevokeKept | Cancel | FlowStarted | FlowDone | KernelLogin | Paste
    | RememberFile | Refreshed | RefreshFailed
)


def parse(content: Any) -> Message | None:
    """The message in `content`, None for what is not ours to handle; `BadMessage` for a malformed one."""
    if not isinstance(content, dict):
        return None
    content = masked(content)  # its tokens and codes as `Secret`s: a traceback of a failing line shows none
    kind = content.get("type")
    if kind == "ready":
        view = content.get("view")
        return Ready(view if isinstance(view, str) and _REQUEST_ID.match(view) else None)
    if kind == "pat":
        server = _server(content.get("server"), optional=True)
        token = _token(content.get("token"), "personal access token")
        if not _SPECKLE_TOKEN.fullmatch(token):
            raise BadMessage(
                "That is not a Speckle token: Speckle tokens are 42 characters of 0-9 and a-f. Copy the whole "
                "token from the page that showed it once, or make a new one."
            )
        return Pat(server, token)
    if kind == "oauth":
        server = _server(content.get("server_url"))
        assert server is not None
        token = _token(content.get("token"), "token")
        app_id = content.get("app_id")
        if app_id is not None and not (isinstance(app_id, str) and _APP_ID.fullmatch(app_id)):
            raise BadMessage("The sign-in came with a malformed app id: log in again.")
        return OAuth(server, TokenPair(token, _optional_token(content.get("refresh_token"))), app_id)
    if kind == "desktop":
        index = content.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 10_000:
            raise BadMessage("Choose one of the desktop accounts listed.")
        return Desktop(index)
    if kind == "logout":
        return Logout()
    if kind == "revoke_kept":
        return RevokeKept()
    if kind == "cancel":
        return Cancel()
    if kind == "flow":
        server = _server(content.get("server"))
        assert server is not None
        return FlowStarted(_flow_id(content.get("flow")), server)
    if kind == "flow_done":
        return FlowDone(_flow_id(content.get("flow")))
    if kind == "kernel_login":
        return KernelLogin(_flow_id(content.get("flow")), _server(content.get("server"), optional=True))
    if kind == "remember_file":
        return RememberFile()
    if kind == "paste":
        pasted = content.get("pasted")
        if not isinstance(pasted, str) or not pasted.strip() or len(pasted) > MAX_URL:
            raise BadMessage("Paste the whole address of the page the sign-in tab ended on.")
        return Paste(_flow_id(content.get("flow")), pasted)
    if kind == "refreshed":
        rid = _request_id(content.get("id"))
        token = _token(content.get("token"), "renewed token")
        return Refreshed(rid, TokenPair(token, _optional_token(content.get("refresh_token"))))
    if kind == "refresh_failed":
        return RefreshFailed(_request_id(content.get("id")), safe_text(content.get("message")))
    return None


def safe_text(value: Any, limit: int = MAX_TEXT) -> str:
    """Text from the browser fit to show: a string, printable, cut short, with anything token-like removed."""
    if not isinstance(value, str):
        return ""
    clean = "".join(ch if ch.isprintable() else " " for ch in value[: limit * 2]).strip()
    clean = _SECRETISH.sub("…", clean)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _token(value: Any, what: str) -> Secret:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadMessage(f"No {what} was given: paste one first." if what == "personal access token"
                         else f"The sign-in did not deliver a {what}: start it again.")
    if not isinstance(value, str):
        raise BadMessage(f"The {what} must be text: paste it again.")
    value = token = Secret(value.strip())
    if len(token) > MAX_TOKEN:
        raise BadMessage(
            f"That is too long to be a Speckle {what}: paste only the token (Speckle tokens are 42 "
            "characters)."
        )
    if not _TOKEN_CHARS.match(token):
        raise BadMessage(
            f"That does not look like a Speckle {what}: it contains spaces or unusual characters. "
            "Paste only the token."
        )
    return token


def _optional_token(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _token(value, "refresh token")


def _request_id(value: Any) -> str:
    if not isinstance(value, str) or not _REQUEST_ID.match(value):
        raise BadMessage("The panel answered a request the kernel did not make.")
    return value


def _flow_id(value: Any) -> str:
    if not isinstance(value, str) or not _FLOW_ID.match(value):
        raise BadMessage("The panel named a login that does not exist: log in again.")
    return value


def _server(value: Any, *, optional: bool = False) -> str | None:
    if optional and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    if value is not None and not isinstance(value, str):
        raise BadMessage(f"The server address must be text: {_EXAMPLE}.")
    if not isinstance(value, str) or not value.strip():
        raise BadMessage(f"No Speckle server address was given: {_EXAMPLE}.")
    if len(value) > MAX_URL:
        raise BadMessage(f"That server address is too long: {_EXAMPLE}.")
    try:
        return typed_server_url(value)
    except InvalidServerURL as err:
        raise BadMessage(err.message) from None
