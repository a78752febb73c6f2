"""The hub's Speckle login service: a Tornado app started by JupyterHub, the only process of the hub that holds
the app secret. It serves, under its prefix (`/services/speckle-auth/`), the routes of the server extension:

    status, login, callback, result      the sign-in tab's pages; browsers are identified by HubOAuth
    flows/<id>, flows/<id>/claim,        called by users' servers (the extension relays) with their JupyterHub
    flows/<id>/code, refresh             API token, identified by HubAuth

What each route answers is the login core's (`core`), as in the extension; this module says who is asking (a hub
user) and adds ownership through the core's hooks: each login belongs to the hub user who started it and each
refresh token to the hub user it was handed to. Anyone else (another user, another user's server) is told no
such login exists, or is refused.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from tornado import web
from tornado.log import access_log

from .._secret import Secret
from .._web import LoginRoute
from ..core._config import read_servers, redirect_uri_problem
from ..core._flows import FlowStore, is_flow_id
from ..core._logins import Logins
from ..core._pages import PAGE_CSP, Page
from ..core._requests import UNKNOWN_FLOW, Reply, Routes, flow_cookie_name, refused
from ._owners import Owners

__all__ = ["HubRoutes", "LoginService", "make_app", "service_from_environment"]

log = logging.getLogger("speckle_nb_auth.hub")

# Query fields shown in the service's log; every other value (a code, an OAuth state, an XSRF token) is hidden.
LOGGED_FIELDS = ("server", "flow", "problem", "denied")
NOT_ALLOWED = (
    "Your hub account may not use the hub's Speckle login service: ask the hub's admin to give it the scope "
    "access:services!service={name} (speckle_nb_auth.hub.configure does so for every user)."
)
NOT_YOURS = ("This sign-in was not handed to you by the hub's Speckle login service (or the service has restarted "
             "since): log in again.")


def scrubbed(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    query = [(key, value if key in LOGGED_FIELDS else "[hidden]") for key, value in parse_qsl(parts.query, True)]
    return f"{parts.path}?{urlencode(query, safe='[]')}"


class HubRoutes(Routes):
    """The core's routes, with each login and refresh token owned by one hub user."""

    nothing_to_claim = UNKNOWN_FLOW  # another user's login and a collected one are alike: unknown

    def __init__(self, logins: Logins, owners: Owners) -> None:
        super().__init__(logins, log)
        self.owners = owners

    def visible(self, flow_id: str, who: str | None) -> bool:
        return who is not None and self.owners.of_flow(flow_id) == who

    def started(self, flow_id: str, who: str | None) -> None:
        if who is not None:
            for dropped in self.owners.start(flow_id, who):
                self.logins.store.discard(dropped)

    def handed_out(self, refresh_token: str | None, who: str | None) -> None:
        if who is not None:
            self.owners.hand_out(refresh_token, who)

    def may_renew(self, refresh_token: Any, who: str | None) -> Reply | None:
        if isinstance(refresh_token, str) and refresh_token and self.owners.of_refresh_token(refresh_token) != who:
            return refused(403, "not_yours", NOT_YOURS)
        return None

    async def paste(self, flow_id: str, raw: bytes | None, who: str | None) -> Reply:
        """A login that is not the user's, or was collected, is unknown before its body is read."""
        flow = self._flow(flow_id, who)
        return flow if isinstance(flow, Reply) else await super().paste(flow_id, raw, who)


@dataclass
class LoginService:
    """What the handlers share: the routes (the app secret inside), who owns what, and where the service is."""

    routes: HubRoutes
    prefix: str  # the service's path on the hub, e.g. /services/speckle-auth/
    port: int
    name: str = "speckle-auth"
    callback_url: str = ""
    http_client: httpx.AsyncClient | None = field(default=None, repr=False)

    @property
    def logins(self) -> Logins:
        return self.routes.logins

    @property
    def owners(self) -> Owners:
        return self.routes.owners


class _Handler(HubOAuthenticated, LoginRoute):
    """Identifies the hub user once per request, without blocking the loop (HubAuth caches the hub's answers)."""

    service: LoginService
    hub_user: str | None = None
    not_allowed = False

    def initialize(self, service: LoginService, hub_auth: HubOAuth) -> None:
        self.service = service
        self.hub_auth = hub_auth

    @property
    def routes(self) -> HubRoutes:
        return self.service.routes

    def flow_cookie(self) -> tuple[str, str]:
        return flow_cookie_name(self.service.port, self.service.prefix), self.service.prefix

    async def prepare(self) -> None:
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except web.HTTPError:
            raise
        except Exception as err:  # noqa: BLE001 - the hub unreachable: nobody is identified, and it is said
            log.warning("The hub could not identify a request (%s)", type(err).__name__)
            model = None
        if not model:
            return
        try:
            model = self.check_hub_user(model)
        except UserNotAllowed:
            self.not_allowed = True
            return
        if model.get("kind", "user") == "user" and isinstance(model.get("name"), str):
            self.hub_user = model["name"]
            self.current_user = model

    def get_current_user(self) -> Any:
        return None  # `prepare` has set it when there is one

    def _request_summary(self) -> str:  # Tornado's access log and its log of uncaught errors use this line
        return f"{self.request.method} {scrubbed(self.request.uri or '')} ({self.request.remote_ip})"


class _PageHandler(_Handler):
    @property
    def content_security_policy(self) -> str:
        return PAGE_CSP

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", PAGE_CSP)
        self.set_page_headers()

    def identified(self) -> bool:
        """True with a hub user; otherwise the browser is sent to sign in to the hub (and back here), or told
        why it may not use the service."""
        if self.hub_user is not None:
            return True
        if self.not_allowed:
            self.show(Page(403, "Not allowed", NOT_ALLOWED.format(name=self.service.name)))
        else:
            self.redirect(self.get_login_url())
        return False

    def cookie_flow_id(self) -> str | None:
        # a cookie left by another hub user of this browser names no login of this one
        return self.routes.cookie_flow_id(self.read_flow_cookie(self.logins.store.lifetime), self.hub_user)

    @property
    def logins(self) -> Logins:
        return self.service.logins

    def started_here(self) -> bool:
        """The login changes state (it supersedes this browser's pending login), so only a page of this hub may
        open it: the browser says where the navigation came from (Sec-Fetch-Site, else the Referer). The
        panel's `_xsrf` is its own server's, which this service cannot check."""
        site = self.request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site == "same-origin"
        return urlsplit(self.request.headers.get("Referer", "")).netloc == self.request.host


class LoginHandler(_PageHandler):
    async def get(self) -> None:
        if not self.identified():
            return
        flow_id = self.get_query_argument("flow", None)
        if not self.started_here():
            told = flow_id if is_flow_id(flow_id) else None
            self.show(Page(403, "Login not started from a notebook",
                           "Start the sign-in with \u201cLog in with Speckle\u201d in a notebook on this hub.",
                           told, "failed" if told else None))
            return
        started = await self.routes.start(flow_id, self.get_query_argument("server", None), self.hub_user,
                                          replaces=self.cookie_flow_id(), browser_is_local=False)
        if isinstance(started, Page):
            self.show(started)
            return
        self.set_flow_cookie(str(flow_id), self.logins.store.lifetime)
        self.redirect(started)


class CallbackHandler(_PageHandler):
    """The one redirect URL of the app, for every hub user. Never raises: Tornado would log its URL."""

    async def get(self) -> None:
        if not self.identified():
            return  # HubOAuth keeps the URL, code included, on this side and comes back here with it
        try:
            access_code = self.get_query_argument("access_code", None)
            access_code = Secret(access_code) if access_code else None  # what a traceback of this frame shows
            denied = self.get_query_argument("denied", None) == "true"
        except web.HTTPError:
            access_code, denied = None, False
        try:
            flow_id = self.cookie_flow_id()
        except Exception as err:  # noqa: BLE001 - never let Tornado log this URL
            log.error("The Speckle callback failed with an unexpected %s", type(err).__name__)
            self.show(Page(500, "Login failed", "The login failed because of an unexpected error."))
            return
        if flow_id is None and access_code:
            log.warning("A Speckle callback came for %s without a login of theirs in this browser: nothing "
                        "exchanged", self.hub_user)
        outcome = await self.routes.callback(flow_id, access_code, denied)
        if isinstance(outcome, Page):
            self.show(outcome)
            return
        self.redirect(self.service.prefix + "result" + outcome)


class ResultHandler(_PageHandler):
    def get(self) -> None:
        if self.identified():
            self.show(self.routes.result(self.get_query_argument("problem", ""), self.cookie_flow_id(),
                                         self.hub_user))


class _JsonHandler(_Handler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def user(self) -> str | None:
        """The hub user asking; None, with the refusal written, when nobody or nobody allowed is."""
        if self.hub_user is None:
            if self.not_allowed:
                self.answer(refused(403, "not_allowed", NOT_ALLOWED.format(name=self.service.name)))
            else:
                self.answer(refused(403, "not_authenticated", "Call this with a JupyterHub API token of a hub user."))
        return self.hub_user


class StatusHandler(_JsonHandler):
    def get(self) -> None:
        if self.user() is not None:
            self.answer(self.routes.status())


class FlowHandler(_JsonHandler):
    def get(self, flow_id: str) -> None:
        user = self.user()
        if user is not None:
            self.answer(self.routes.flow(flow_id, user))


class ClaimHandler(_JsonHandler):
    def post(self, flow_id: str) -> None:
        user = self.user()
        if user is not None:
            self.answer(self.routes.claim(flow_id, user))


class PastedHandler(_JsonHandler):
    async def post(self, flow_id: str) -> None:
        user = self.user()
        if user is not None:
            self.answer(await self.routes.paste(flow_id, self.request.body, user))


class RefreshHandler(_JsonHandler):
    async def post(self) -> None:
        user = self.user()
        if user is not None:
            self.answer(await self.routes.refresh(self.request.body, user))


class RootHandler(web.RequestHandler):
    """The service's own address, which JupyterHub checks every minute: a 200 with its name, and nothing else
    (a 404 there filled the hub's log)."""

    def initialize(self, service: LoginService, hub_auth: HubOAuth) -> None:
        self.service = service

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(f"The hub's Speckle login service ({self.service.name}).\n")

    head = get  # type: ignore[assignment]


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """JupyterHub's own end of the hub login, with the service's log line (its code and state hidden)."""

    def initialize(self, service: LoginService, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth

    def _request_summary(self) -> str:
        return f"{self.request.method} {scrubbed(self.request.uri or '')} ({self.request.remote_ip})"


def _log_request(handler: web.RequestHandler) -> None:
    """Tornado's access log, with one 404 made quiet: the panel asks about its login right after the click,
    before the hub's own sign-in of the tab has let the service start it, so "unknown" is expected there."""
    status = handler.get_status()
    expected = status == 404 and isinstance(handler, FlowHandler)
    level = logging.INFO if status < 400 or expected else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(logging.DEBUG if expected else level, "%d %s %.2fms", status,
                   handler._request_summary(), 1000.0 * handler.request.request_time())  # noqa: SLF001


def make_app(service: LoginService, hub_auth: HubOAuth, *, cookie_secret: bytes | None = None) -> web.Application:
    prefix = service.prefix
    args = {"service": service, "hub_auth": hub_auth}
    routes: list[Any] = [
        (prefix + path, handler, args) for path, handler in (
            ("status", StatusHandler), ("login", LoginHandler), ("callback", CallbackHandler),
            ("result", ResultHandler), ("flows/([^/]+)", FlowHandler), ("flows/([^/]+)/claim", ClaimHandler),
            ("flows/([^/]+)/code", PastedHandler), ("refresh", RefreshHandler),
            ("oauth_callback", OAuthCallbackHandler), ("", RootHandler),
        )
    ]
    return web.Application(routes, cookie_secret=cookie_secret or os.urandom(32), xsrf_cookies=False,
                           log_function=_log_request)


def service_from_environment(
    client: httpx.AsyncClient, environ: Mapping[str, str] = os.environ
) -> tuple[LoginService, list[str]]:
    """The service as JupyterHub starts it: the Speckle server and its app from SPECKLE_SERVER, SPECKLE_APP_ID
    and SPECKLE_APP_SECRET; where it is from JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_PREFIX and
    JUPYTERHUB_PUBLIC_URL (or SPECKLE_REDIRECT_URI for its callback); SPECKLE_AUTH_STATE_FILE, where it keeps the
    owners of refresh tokens; SPECKLE_AUTH_ALLOW_HTTP=1 for a Speckle server on plain http elsewhere than this
    machine. Returns the problems found too, one sentence each."""
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/speckle-auth/")
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    public = environ.get("JUPYTERHUB_PUBLIC_URL", "").strip()
    callback = environ.get("SPECKLE_REDIRECT_URI", "").strip() or (public.rstrip("/") + "/callback" if public else "")
    url = environ.get("SPECKLE_SERVER", "").strip()
    entry: dict[str, Any] = {"url": url, "app_secret_env": "SPECKLE_APP_SECRET"}
    if environ.get("SPECKLE_APP_ID", "").strip():
        entry["app_id"] = environ["SPECKLE_APP_ID"].strip()
    problems: list[str] = []
    if not url:
        problems.append("SPECKLE_SERVER is not set: the service has no Speckle server to sign in to.")
    servers, found = read_servers([entry] if url else [], redirect_problem=redirect_uri_problem(callback),
                                  environ=environ, public_app=True,
                                  allow_http=environ.get("SPECKLE_AUTH_ALLOW_HTTP", "") == "1")
    problems += found
    logins = Logins(servers, servers[0] if servers else None, FlowStore(lifetime=600.0, max_flows=10_000), client,
                    log=log)

    port = urlsplit(environ.get("JUPYTERHUB_SERVICE_URL", "") or "http://127.0.0.1:10101").port or 80
    owners = _owners(environ.get("SPECKLE_AUTH_STATE_FILE", "").strip(), problems)
    name = environ.get("JUPYTERHUB_SERVICE_NAME", "speckle-auth")
    service = LoginService(HubRoutes(logins, owners), prefix, port, name, callback, client)
    return service, problems


def _owners(path: str, problems: list[str]) -> Owners:
    """Owners kept in `path` (when given and usable), so a restart keeps renewing the sign-ins handed out."""
    if not path:
        return Owners()
    try:
        return Owners(path)
    except (OSError, sqlite3.Error) as err:
        problems.append(f"the state file {path} cannot be used ({type(err).__name__}: {err}): the owners of "
                        "refresh tokens are kept in memory, so after a restart users renew by logging in again.")
        return Owners()
