"""The routes under `<base_url>speckle-auth/`: thin Tornado handlers that say who is asking (Jupyter's own user,
the server's one) and whether Jupyter's Authorizer lets them, then write what the login core's `Routes`
answers: a page (the routes a login tab visits) or JSON (the routes the panel and the kernel call).

Every verb needs Jupyter's own authentication, and POSTs need its XSRF token when the caller authenticates
with a cookie. Each handler names its `auth_resource` ("speckle-auth"), so a deployment's Authorizer can limit
it. The callback never raises `HTTPError`: Tornado would log its URL, code included. It always ends in a
redirect to the clean result URL, which renders the outcome from the flow the browser's cookie names.
"""

from __future__ import annotations

from typing import cast

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from .._protocol import is_loopback_host
from .._secret import Secret
from .._web import LoginRoute
from ..core._pages import PAGE_CSP, Page
from ..core._requests import Routes, flow_cookie_name

__all__ = ["AUTH_RESOURCE", "PREFIX", "routes"]

PREFIX = "speckle-auth"
AUTH_RESOURCE = "speckle-auth"
NOT_AUTHORIZED = "This Jupyter server's authorization rules do not let you use the Speckle login here."


class _SpeckleAuthMixin(ExtensionHandlerMixin, LoginRoute):
    auth_resource = AUTH_RESOURCE

    @property
    def routes(self) -> Routes:
        return cast(Routes, self.extensionapp.routes)  # type: ignore[attr-defined]

    def flow_cookie(self) -> tuple[str, str]:
        return flow_cookie_name(self.serverapp.port, self.base_url), self.base_url


class _PageHandler(_SpeckleAuthMixin, JupyterHandler):
    """A route a login tab visits: it answers with a page of ours or a redirect, never a page with a referrer
    or a frame to leak through."""

    @property
    def content_security_policy(self) -> str:
        return PAGE_CSP

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_page_headers()

    async def allowed(self) -> bool:
        """Jupyter's Authorizer, asked as `@authorized` asks it, but answered with a page: a 403 `HTTPError`
        would log the URL, which may hold a code."""
        if await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)):
            return True
        self.show(Page(403, "Not allowed", NOT_AUTHORIZED))
        return False

    def cookie_flow_id(self) -> str | None:
        return self.routes.cookie_flow_id(self.read_flow_cookie(self.routes.logins.store.lifetime), None)


class LoginHandler(_PageHandler):
    @web.authenticated
    async def get(self) -> None:
        # A GET that changes state (it supersedes this browser's pending login and sets its flow cookie):
        # another site must not be able to start one, so it carries `_xsrf` (or a same-origin Referer).
        self.check_xsrf_cookie()
        if not await self.allowed():
            return
        flow_id = self.get_query_argument("flow", None)
        result = f"{self.request.protocol}://{self.request.host}{url_path_join(self.base_url, PREFIX, 'result')}"
        started = await self.routes.start(
            flow_id, self.get_query_argument("server", None), None, replaces=self.cookie_flow_id(),
            return_url=result, browser_is_local=is_loopback_host(self.request.host_name),
        )
        if isinstance(started, Page):
            self.show(started)
            return
        self.set_flow_cookie(cast(str, flow_id), self.routes.logins.store.lifetime)
        self.redirect(started)


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
            if not await self.allowed():
                return
            flow_id = self.cookie_flow_id()
        except Exception as err:  # noqa: BLE001 - an Authorizer's failure too: never let Tornado log this URL
            self.log.error("The Speckle callback failed with an unexpected %s", type(err).__name__)
            self.show(Page(500, "Login failed", "The login failed because of an unexpected error."))
            return
        outcome = await self.routes.callback(flow_id, access_code, denied)
        if isinstance(outcome, Page):
            self.show(outcome)
            return
        self.redirect(url_path_join(self.base_url, PREFIX, "result") + outcome)


class ResultHandler(_PageHandler):
    @web.authenticated
    async def get(self) -> None:
        if await self.allowed():
            self.show(self.routes.result(self.get_query_argument("problem", ""), self.cookie_flow_id(), None))


class _JsonHandler(_SpeckleAuthMixin, APIHandler):
    """A route the panel or the kernel calls: JSON in and out, errors as `{"error": code, "message": ...}`, no
    caching (Jupyter's own refusals too: they are written with the default headers)."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Cache-Control", "no-store")


class StatusHandler(_JsonHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.answer(self.routes.status())


class FlowHandler(_JsonHandler):
    @web.authenticated
    @authorized
    def get(self, flow_id: str) -> None:
        self.answer(self.routes.flow(flow_id, None))


class ClaimHandler(_JsonHandler):
    @web.authenticated
    @authorized
    def post(self, flow_id: str) -> None:
        self.answer(self.routes.claim(flow_id, None))


class PastedHandler(_JsonHandler):
    """Paste-back: the panel sends the address the sign-in tab ended on, where no receiver could take it."""

    @web.authenticated
    @authorized
    async def post(self, flow_id: str) -> None:
        self.answer(await self.routes.paste(flow_id, self.request.body, None))


class CancelHandler(_JsonHandler):
    """The panel's Cancel: the login ends and its loopback listener, if any, closes."""

    @web.authenticated
    @authorized
    def post(self, flow_id: str) -> None:
        self.answer(self.routes.cancel(flow_id, None))


class RefreshHandler(_JsonHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.answer(await self.routes.refresh(self.request.body, None))


class MailboxHandler(_JsonHandler):
    """The panel's browser half leaves messages here (POST); its kernel collects them (GET, a long poll), so
    they reach a kernel whose cell is running."""

    @web.authenticated
    @authorized
    async def get(self, box_id: str) -> None:
        self.answer(await self.routes.take_messages(box_id, self.get_query_argument("wait", "0")))

    @web.authenticated
    @authorized
    def post(self, box_id: str) -> None:
        self.answer(self.routes.post_message(box_id, self.request.body))


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
        (rf"/{PREFIX}/flows/([^/]+)/cancel", CancelHandler),
        (rf"/{PREFIX}/refresh", RefreshHandler),
        (rf"/{PREFIX}/mailbox/([^/]+)", MailboxHandler),
    ]
