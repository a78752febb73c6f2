"""The routes under `<base_url>speckle-auth/`: thin Tornado handlers that read the request, call `Logins`,
and write a page (the routes a login tab visits) or JSON (the routes the panel calls).

Every verb needs Jupyter's own authentication, and POSTs need its XSRF token when the caller authenticates
with a cookie. The callback never raises `HTTPError`: Tornado would log its URL, code included. It always ends
in a redirect to the clean result URL, which renders the outcome from the flow the browser's cookie names.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, cast

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from .._errors import SpeckleAuthError
from .._protocol import is_loopback_host
from .._secret import Secret
from ._flows import is_flow_id
from ._logins import Logins, Refused
from ._mailbox import is_box_id
from ._pages import PAGE_CSP, Page, error_status, flow_page, new_nonce, page_headers, problem_page, render

__all__ = ["flow_cookie_name", "routes"]

PREFIX = "speckle-auth"
# The fields of a JSON body that hold a token or a sign-in code (the refresh route's, the paste-back's, the
# mailbox's messages from the panel).
SECRET_FIELDS = ("token", "refresh_token", "pasted")


def json_body(raw: bytes | None) -> Any:
    """A request's JSON body with its secret fields held as `Secret`s, so that no frame holding it shows them;
    None when it is not JSON. Not `get_json_body`: that logs a body it cannot parse."""
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):  # RecursionError: nested too deep, e.g. [[[[...]]]]
        return None
    if not isinstance(body, dict):
        return body
    return {key: Secret(value) if key in SECRET_FIELDS and isinstance(value, str) else value
            for key, value in body.items()}


def flow_cookie_name(port: int, base_url: str) -> str:
    """Unique to one Jupyter server: browsers share cookies between the ports of a host."""
    digest = hashlib.sha256(base_url.encode("utf-8")).hexdigest()[:10]
    return f"speckle-auth-flow-{port}-{digest}"


class _SpeckleAuthMixin(ExtensionHandlerMixin):
    @property
    def logins(self) -> Logins:
        return cast(Logins, self.extensionapp.logins)  # type: ignore[attr-defined]


class _PageHandler(_SpeckleAuthMixin, JupyterHandler):
    """A route a login tab visits: it answers with a page of ours or a redirect, never a page with a referrer
    or a frame to leak through."""

    @property
    def content_security_policy(self) -> str:
        return PAGE_CSP

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    @property
    def _cookie_name(self) -> str:
        return flow_cookie_name(self.serverapp.port, self.base_url)

    def cookie_flow_id(self) -> str | None:
        value = self.get_signed_cookie(self._cookie_name, max_age_days=self.logins.store.lifetime / 86400)
        flow_id = value.decode("ascii", "replace") if value else None
        return flow_id if is_flow_id(flow_id) else None

    def set_flow_cookie(self, flow_id: str) -> None:
        # behind a proxy that ends TLS, Jupyter itself sees http
        forwarded = self.request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        https = self.request.protocol == "https" or forwarded == "https"
        self.set_signed_cookie(
            self._cookie_name,
            flow_id,
            expires_days=None,
            path=self.base_url,
            max_age=int(self.logins.store.lifetime),
            httponly=True,
            samesite="Lax",
            secure=https,
        )

    def show(self, page: Page) -> None:
        nonce = new_nonce()
        self.set_status(page.status)
        for name, value in page_headers(nonce).items():
            self.set_header(name, value)
        self.finish(render(page, nonce))


class LoginHandler(_PageHandler):
    @web.authenticated
    async def get(self) -> None:
        # A GET that changes state (it supersedes this browser's pending login and sets its flow cookie):
        # another site must not be able to start one, so it carries `_xsrf` (or a same-origin Referer).
        self.check_xsrf_cookie()
        flow_id = self.get_query_argument("flow", None)
        server_url = self.get_query_argument("server", None)
        result = f"{self.request.protocol}://{self.request.host}{url_path_join(self.base_url, PREFIX, 'result')}"
        try:
            url = await self.logins.start(
                server_url, flow_id, replaces=self.cookie_flow_id(), return_url=result,
                browser_is_local=is_loopback_host(self.request.host_name),
            )
        except Refused as refused:
            told = flow_id if is_flow_id(flow_id) else None  # lets the page tell the waiting panel
            self.show(Page(refused.status, refused.title, refused.message, told, "failed" if told else None))
            return
        self.set_flow_cookie(cast(str, flow_id))
        self.redirect(url)


class CallbackHandler(_PageHandler):
    @web.authenticated
    async def get(self) -> None:
        try:
            access_code = self.get_query_argument("access_code", None)
            access_code = Secret(access_code) if access_code else None  # what a traceback of this frame shows
            denied = self.get_query_argument("denied", None) == "true"
        except web.HTTPError:  # not UTF-8: not what Speckle sends, so no code; never raised (its URL is logged)
            access_code, denied = None, False
        try:
            problem = await self.logins.finish(self.cookie_flow_id(), access_code, denied)
        except Exception as err:  # never let Tornado log this URL
            self.log.error("The Speckle callback failed with an unexpected %s", type(err).__name__)
            self.show(Page(500, "Login failed", "The login failed because of an unexpected error."))
            return
        result = url_path_join(self.base_url, PREFIX, "result")
        self.redirect(f"{result}?problem={problem}" if problem else result)


class ResultHandler(_PageHandler):
    @web.authenticated
    def get(self) -> None:
        page = problem_page(self.get_query_argument("problem", ""))
        if page is None:
            flow_id = self.cookie_flow_id()
            page = flow_page(self.logins.store.get(flow_id) if flow_id else None)
        self.show(page)


class _JsonHandler(_SpeckleAuthMixin, APIHandler):
    """A route the panel calls: JSON in and out, errors as `{"error": code, "message": ...}`, no caching."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")

    def reply(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def refuse(self, status: int, code: str, message: str) -> None:
        self.reply({"error": code, "message": message}, status)

    def valid_flow_id(self, flow_id: str) -> bool:
        if is_flow_id(flow_id):
            return True
        self.refuse(400, "bad_flow_id", "A flow id is 16-64 characters of A-Z, a-z, 0-9, '_' and '-'.")
        return False


class StatusHandler(_JsonHandler):
    @web.authenticated
    def get(self) -> None:
        self.reply(self.logins.status())


class FlowHandler(_JsonHandler):
    @web.authenticated
    def get(self, flow_id: str) -> None:
        if not self.valid_flow_id(flow_id):
            return
        flow = self.logins.store.get(flow_id)
        if flow is None or flow.claimed:
            self.refuse(404, "unknown_flow", "No login with this id is known here (it ended or never began).")
            return
        # the panel keeps waiting either way
        status = "pending" if flow.status == "exchanging" else flow.status
        self.reply({"status": status, "message": flow.message, "paste": flow.paste, "app": flow.app_id})


class ClaimHandler(_JsonHandler):
    @web.authenticated
    def post(self, flow_id: str) -> None:
        if not self.valid_flow_id(flow_id):
            return
        claimed = self.logins.store.claim(flow_id)
        if claimed is None:
            flow = self.logins.store.get(flow_id)
            if flow is not None and not flow.claimed and flow.status != "done":
                self.refuse(409, "not_done", f"This login has no token to hand over (it is {flow.status}).")
            else:
                self.refuse(404, "unknown_flow", "No token waits for this login (it was already collected).")
            return
        server_url, tokens = claimed
        flow = self.logins.store.get(flow_id)
        # the app id lets the kernel learn the token's scopes (an app token holds its app's)
        self.reply({"server_url": server_url, "token": tokens.token, "refresh_token": tokens.refresh_token,
                    "app_id": (flow.app_id if flow is not None else "") or None})


class PastedHandler(_JsonHandler):
    """Paste-back: the panel sends the address the sign-in tab ended on, where no receiver could take it."""

    @web.authenticated
    async def post(self, flow_id: str) -> None:
        if not self.valid_flow_id(flow_id):
            return
        body = json_body(self.request.body)
        try:
            await self.logins.finish_pasted(flow_id, body.get("pasted") if isinstance(body, dict) else None)
        except Refused as refused:
            self.refuse(refused.status, refused.code, refused.message)
            return
        self.reply({"status": "done"})


class RefreshHandler(_JsonHandler):
    @web.authenticated
    async def post(self) -> None:
        body = json_body(self.request.body)
        if not isinstance(body, dict):
            body = {}
        try:
            pair = await self.logins.refresh(body.get("server_url"), body.get("refresh_token"), body.get("app_id"))
        except Refused as refused:
            self.refuse(refused.status, refused.code, refused.message)
            return
        except SpeckleAuthError as err:
            self.refuse(error_status(err.code), err.code, err.message)
            return
        self.reply({"token": pair.token, "refresh_token": pair.refresh_token})


class MailboxHandler(_JsonHandler):
    """The panel's browser half leaves messages here (POST); its kernel collects them (GET, a long poll), so
    they reach a kernel whose cell is running."""

    MAX_BODY = 16 * 1024
    MAX_WAIT = 25.0

    @web.authenticated
    async def get(self, box_id: str) -> None:
        if not self._valid_box(box_id):
            return
        try:
            wait = min(max(float(self.get_query_argument("wait", "0")), 0.0), self.MAX_WAIT)
        except ValueError:
            wait = 0.0
        messages = await self.logins.mailboxes.take(box_id, wait)
        self.reply({"messages": messages})

    @web.authenticated
    def post(self, box_id: str) -> None:
        if not self._valid_box(box_id):
            return
        body = json_body(self.request.body) if len(self.request.body or b"") <= self.MAX_BODY else None
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            self.refuse(400, "bad_message", "Send one JSON object with a \"type\" of at most 16 KiB.")
            return
        if not self.logins.mailboxes.post(box_id, body):
            self.refuse(429, "mailbox_full", "The kernel is not collecting its messages: restart it, then "
                        "run login() again.")
            return
        self.reply({"posted": True})

    def _valid_box(self, box_id: str) -> bool:
        if is_box_id(box_id):
            return True
        self.refuse(400, "bad_box_id", "A mailbox id is 24-64 characters of A-Z, a-z, 0-9, '_' and '-'.")
        return False


def routes() -> list[tuple[str, type[web.RequestHandler]]]:
    """Patterns relative to the server's base_url (the ExtensionApp prefixes it)."""
    return [
        (rf"/{PREFIX}/status", StatusHandler),
        (rf"/{PREFIX}/login", LoginHandler),
        (rf"/{PREFIX}/callback", CallbackHandler),
        (rf"/{PREFIX}/result", ResultHandler),
        (rf"/{PREFIX}/flows/([^/]+)", FlowHandler),
        (rf"/{PREFIX}/flows/([^/]+)/claim", ClaimHandler),
        (rf"/{PREFIX}/flows/([^/]+)/code", PastedHandler),
        (rf"/{PREFIX}/refresh", RefreshHandler),
        (rf"/{PREFIX}/mailbox/([^/]+)", MailboxHandler),
    ]
