"""What each login route answers, written once for the server extension and the hub's login service.

A host (Tornado handlers in `serverext` or `hub`) identifies who is asking and passes their name as `who` (None
where the server has one user); everything else is decided here, from the request's parts to an answer: a
`Reply` (status and JSON body), a `Page`, or the address to send the sign-in tab to. The hooks say what a host
adds, as oauthenticator's handlers are varied: who may see a login (`visible`), and what it keeps of who holds
which refresh token (`started`, `handed_out`, `may_renew`). The defaults are the single-user server's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from .._errors import SpeckleAuthError
from .._secret import Secret
from ._flows import Flow, is_flow_id
from ._logins import Logins, Refused
from ._mailbox import is_box_id
from ._pages import Page, error_status, flow_page, problem_page
from ._wire import claim_reply, flow_status, read_body, refusal, renewal_reply

__all__ = [
    "BAD_FLOW_ID",
    "MAILBOX_MAX_BODY",
    "MAILBOX_MAX_WAIT",
    "UNKNOWN_FLOW",
    "Reply",
    "Routes",
    "flow_cookie_name",
    "refused",
]

MAILBOX_MAX_BODY = 16 * 1024
MAILBOX_MAX_WAIT = 25.0
BAD_FLOW_ID = "A flow id is 16-64 characters of A-Z, a-z, 0-9, '_' and '-'."
UNKNOWN_FLOW = "No login with this id is known here (it ended or never began)."


@dataclass(frozen=True)
class Reply:
    """A JSON answer: its status and body (which may hold a token: never shown)."""

    status: int
    body: dict[str, Any] = field(repr=False)


def refused(status: int, code: str, message: str) -> Reply:
    return Reply(status, refusal(code, message))


def flow_cookie_name(port: int, base: str) -> str:
    """The cookie naming a browser's pending login, unique to one server: browsers share cookies between the
    ports of a host."""
    digest = hashlib.sha256(base.encode("utf-8")).hexdigest()[:10]
    return f"speckle-auth-flow-{port}-{digest}"


class Routes:
    #: What a claim of a login with no token (collected already, or unknown) is told.
    nothing_to_claim = "No token waits for this login (it was already collected)."

    def __init__(self, logins: Logins, log: logging.Logger) -> None:
        self.logins = logins
        self.log = log

    # --- hooks ----------------------------------------------------------------------------------------------

    def visible(self, flow_id: str, who: str | None) -> bool:
        """May `who` see the login `flow_id`? Another's login is as unknown as one never started."""
        return True

    def started(self, flow_id: str, who: str | None) -> None:
        """`who` started the login `flow_id`."""

    def handed_out(self, refresh_token: str | None, who: str | None) -> None:
        """`who` was handed `refresh_token` (by a claim or a renewal)."""

    def may_renew(self, refresh_token: Any, who: str | None) -> Reply | None:
        """A refusal when `who` may not renew with `refresh_token`, else None."""
        return None

    # --- the sign-in tab's pages ----------------------------------------------------------------------------

    def cookie_flow_id(self, value: bytes | None, who: str | None) -> str | None:
        """The login the browser's flow cookie names, if it is one `who` may see."""
        flow_id = value.decode("ascii", "replace") if value else None
        if flow_id is None or not is_flow_id(flow_id) or not self.visible(flow_id, who):
            return None
        return flow_id

    async def start(
        self, flow_id: str | None, server_url: str | None, who: str | None, *, replaces: str | None,
        return_url: str = "", browser_is_local: bool = True,
    ) -> str | Page:
        """The address of Speckle's sign-in page for a new login, or the page saying why there is none (which
        tells the waiting panel, when the id is one)."""
        told = flow_id if is_flow_id(flow_id) else None
        try:
            url = await self.logins.start(server_url, flow_id, replaces=replaces, return_url=return_url,
                                          browser_is_local=browser_is_local)
        except Refused as err:
            return Page(err.status, err.title, err.message, told, "failed" if told else None)
        assert flow_id is not None  # `start` refuses an invalid id
        self.started(flow_id, who)
        return url

    async def callback(self, flow_id: str | None, access_code: str | None, denied: bool) -> str | Page:
        """Speckle's redirect: the query of the result page to send the tab on to, or a page when something
        unexpected failed (never an exception: the host would log the URL, code included)."""
        access_code = Secret(access_code) if access_code else None
        try:
            problem = await self.logins.finish(flow_id, access_code, denied)
        except Exception as err:  # noqa: BLE001 - see above
            self.log.error("The Speckle callback failed with an unexpected %s", type(err).__name__)
            return Page(500, "Login failed", "The login failed because of an unexpected error.")
        return f"?problem={problem}" if problem else ""

    def result(self, problem: str, flow_id: str | None, who: str | None) -> Page:
        page = problem_page(problem)
        if page is not None:
            return page
        visible = flow_id is not None and self.visible(flow_id, who)
        return flow_page(self.logins.store.get(flow_id) if flow_id and visible else None)

    # --- the routes the panel and the kernel call -----------------------------------------------------------

    def status(self) -> Reply:
        return Reply(200, self.logins.status())

    def flow(self, flow_id: str, who: str | None) -> Reply:
        flow = self._flow(flow_id, who)
        if not isinstance(flow, Flow):
            return flow
        return Reply(200, flow_status(flow.status, flow.message, paste=flow.paste, app=flow.app_id))

    def claim(self, flow_id: str, who: str | None) -> Reply:
        if not is_flow_id(flow_id):
            return refused(400, "bad_flow_id", BAD_FLOW_ID)
        flow = self.logins.store.get(flow_id) if self.visible(flow_id, who) else None
        claimed = self.logins.store.claim(flow_id) if flow is not None else None
        if flow is None or claimed is None:
            if flow is not None and not flow.claimed and flow.status != "done":
                return refused(409, "not_done", f"This login has no token to hand over (it is {flow.status}).")
            return refused(404, "unknown_flow", self.nothing_to_claim)
        server_url, tokens = claimed
        self.handed_out(tokens.refresh_token, who)
        return Reply(200, claim_reply(server_url, tokens, flow.app_id))

    async def paste(self, flow_id: str, raw: bytes | None, who: str | None) -> Reply:
        """Paste-back: the address the sign-in tab ended on, where no receiver could take it."""
        if not is_flow_id(flow_id):
            return refused(400, "bad_flow_id", BAD_FLOW_ID)
        if not self.visible(flow_id, who):
            return refused(404, "unknown_flow", UNKNOWN_FLOW)
        body = read_body(raw)
        try:
            await self.logins.finish_pasted(flow_id, body.get("pasted") if isinstance(body, dict) else None)
        except Refused as err:
            return refused(err.status, err.code, err.message)
        return Reply(200, {"status": "done"})

    def cancel(self, flow_id: str, who: str | None) -> Reply:
        """The panel's Cancel, for a login whose answer the extension listens for."""
        flow = self._flow(flow_id, who)
        if not isinstance(flow, Flow):
            return flow
        self.logins.cancel(flow_id)
        return Reply(200, flow_status(flow.status, flow.message, paste=flow.paste, app=flow.app_id))

    async def refresh(self, raw: bytes | None, who: str | None) -> Reply:
        body = read_body(raw)
        body = body if isinstance(body, dict) else {}
        refresh_token = body.get("refresh_token")
        refusal_ = self.may_renew(refresh_token, who)
        if refusal_ is not None:
            return refusal_
        try:
            pair = await self.logins.refresh(body.get("server_url"), refresh_token, body.get("app_id"))
        except Refused as err:
            return refused(err.status, err.code, err.message)
        except SpeckleAuthError as err:
            return refused(error_status(err.code), err.code, err.message)
        self.handed_out(pair.refresh_token, who)
        return Reply(200, renewal_reply(pair))

    async def take_messages(self, box_id: str, wait: str) -> Reply:
        """The kernel collects its panels' messages: a long poll of up to `wait` seconds."""
        if not is_box_id(box_id):
            return _bad_box()
        try:
            seconds = min(max(float(wait), 0.0), MAILBOX_MAX_WAIT)
        except ValueError:
            seconds = 0.0
        return Reply(200, {"messages": await self.logins.mailboxes.take(box_id, seconds)})

    def post_message(self, box_id: str, raw: bytes | None) -> Reply:
        """A panel's browser half leaves a message for its kernel."""
        if not is_box_id(box_id):
            return _bad_box()
        body = read_body(raw) if len(raw or b"") <= MAILBOX_MAX_BODY else None
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return refused(400, "bad_message", "Send one JSON object with a \"type\" of at most 16 KiB.")
        if not self.logins.mailboxes.post(box_id, body):
            return refused(429, "mailbox_full", "The kernel is not collecting its messages: restart it, then "
                           "run login() again.")
        return Reply(200, {"posted": True})

    def _flow(self, flow_id: str, who: str | None) -> Flow | Reply:
        """The login `flow_id` as `who` may see it, or the refusal: a bad id, or a login unknown to them or
        already claimed."""
        if not is_flow_id(flow_id):
            return refused(400, "bad_flow_id", BAD_FLOW_ID)
        flow = self.logins.store.get(flow_id) if self.visible(flow_id, who) else None
        if flow is None or flow.claimed:
            return refused(404, "unknown_flow", UNKNOWN_FLOW)
        return flow


def _bad_box() -> Reply:
    return refused(400, "bad_box_id", "A mailbox id is 24-64 characters of A-Z, a-z, 0-9, '_' and '-'.")
