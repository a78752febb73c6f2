"""The hub's Speckle login service: a Tornado app started by JupyterHub, the only process of the hub that holds
the app secret. It serves, under its prefix (`/services/speckle-auth/`), the routes of the server extension:

    status, login, callback, result      the sign-in tab's pages; browsers are identified by HubOAuth
    flows/<id>, flows/<id>/claim,        called by users' servers (the extension relays) with their JupyterHub
    flows/<id>/code, refresh             API token, identified by HubAuth

Each login belongs to the hub user who started it and each refresh token to the hub user it was handed to:
anyone else (another user, another user's server) is told no such login exists, or is refused. The rules of a
login (single use, expiry, the flow cookie that binds the callback to the browser that started it) are those of
the extension, from the same modules (`serverext._flows`, `serverext._logins`, `serverext._pages`).
"""

from __future__ import annotations

import json
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

from .._errors import SpeckleAuthError
from ..serverext._config import read_servers, redirect_uri_problem
from ..serverext._flows import Flow, FlowStore, is_flow_id
from ..serverext._handlers import flow_cookie_name
from ..serverext._logins import Logins, Refused
from ..serverext._pages import PAGE_CSP, Page, error_status, flow_page, new_nonce, page_headers, problem_page, render
from ._owners import Owners

__all__ = ["LoginService", "make_app", "service_from_environment"]

log = logging.getLogger("speckle_nb_auth.hub")

# Query fields shown in the service's log; every other value (a code, an OAuth state, an XSRF token) is hidden.
LOGGED_FIELDS = ("server", "flow", "problem", "denied")
NOT_ALLOWED = (
    "Your hub account may not use the hub's Speckle login service: ask the hub's admin to give it the scope "
    "access:services!service={name} (speckle_nb_auth.hub.configure does so for every user)."
)


def scrubbed(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    query = [(key, value if key in LOGGED_FIELDS else "[hidden]") for key, value in parse_qsl(parts.query, True)]
    return f"{parts.path}?{urlencode(query, safe='[]')}"


@dataclass
class LoginService:
    """What the handlers share: the logins (the app secret inside), who owns them, and where the service is."""

    logins: Logins
    owners: Owners
    prefix: str  # the service's path on the hub, e.g. /services/speckle-auth/
    port: int
    name: str = "speckle-auth"
    callback_url: str = ""
    http_client: httpx.AsyncClient | None = field(default=None, repr=False)

    @property
    def cookie_name(self) -> str:
        return flow_cookie_name(self.port, self.prefix)

    def owned_flow(self, flow_id: str, user: str) -> Flow | None:
        """The flow `flow_id` if `user` started it; another user's login is as unknown as one never started."""
        if self.owners.of_flow(flow_id) != user:
            return None
        return self.logins.store.get(flow_id)


class _Handler(HubOAuthenticated, web.RequestHandler):
    """Identifies the hub user once per request, without blocking the loop (HubAuth caches the hub's answers)."""

    service: LoginService
    hub_user: str | None = None
    not_allowed = False

    def initialize(self, service: LoginService, hub_auth: HubOAuth) -> None:
        self.service = service
        self.hub_auth = hub_auth

    @property
    def logins(self) -> Logins:
        return self.service.logins

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
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    def show(self, page: Page) -> None:
        nonce = new_nonce()
        self.set_status(page.status)
        for name, value in page_headers(nonce).items():
            self.set_header(name, value)
        self.finish(render(page, nonce))

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
        value = self.get_signed_cookie(self.service.cookie_name,
                                       max_age_days=self.logins.store.lifetime / 86400)
        flow_id = value.decode("ascii", "replace") if value else None
        if not is_flow_id(flow_id) or self.service.owners.of_flow(str(flow_id)) != self.hub_user:
            return None  # a cookie left by another hub user of this browser names no login of this one
        return flow_id

    def set_flow_cookie(self, flow_id: str) -> None:
        forwarded = self.request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        self.set_signed_cookie(
            self.service.cookie_name, flow_id, expires_days=None, path=self.service.prefix,
            max_age=int(self.logins.store.lifetime), httponly=True, samesite="Lax",
            secure=self.request.protocol == "https" or forwarded == "https",
        )

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
        user = str(self.hub_user)
        flow_id = self.get_query_argument("flow", None)
        told = flow_id if is_flow_id(flow_id) else None
        if not self.started_here():
            self.show(Page(403, "Login not started from a notebook",
                           "Start the sign-in with \u201cLog in with Speckle\u201d in a notebook on this hub.",
                           told, "failed" if told else None))
            return
        try:
            url = await self.logins.start(self.get_query_argument("server", None), flow_id,
                                          replaces=self.cookie_flow_id(), browser_is_local=False)
        except Refused as refused:
            self.show(Page(refused.status, refused.title, refused.message, told, "failed" if told else None))
            return
        assert flow_id is not None  # `start` refuses an invalid id
        self.service.owners.start(flow_id, user)
        self.set_flow_cookie(flow_id)
        self.redirect(url)


class CallbackHandler(_PageHandler):
    """The one redirect URL of the app, for every hub user. Never raises: Tornado would log its URL."""

    async def get(self) -> None:
        if not self.identified():
            return  # HubOAuth keeps the URL, code included, on this side and comes back here with it
        try:
            access_code = self.get_query_argument("access_code", None)
            denied = self.get_query_argument("denied", None) == "true"
        except web.HTTPError:
            access_code, denied = None, False
        try:
            flow_id = self.cookie_flow_id()
            if flow_id is None and access_code:
                log.warning("A Speckle callback came for %s without a login of theirs in this browser: nothing "
                            "exchanged", self.hub_user)
            problem = await self.logins.finish(flow_id, access_code, denied)
        except Exception as err:  # noqa: BLE001 - never let Tornado log this URL
            log.error("The Speckle callback failed with an unexpected %s", type(err).__name__)
            self.show(Page(500, "Login failed", "The login failed because of an unexpected error."))
            return
        result = self.service.prefix + "result"
        self.redirect(f"{result}?problem={problem}" if problem else result)


class ResultHandler(_PageHandler):
    def get(self) -> None:
        if not self.identified():
            return
        page = problem_page(self.get_query_argument("problem", ""))
        if page is None:
            flow_id = self.cookie_flow_id()
            page = flow_page(self.service.owned_flow(flow_id, str(self.hub_user)) if flow_id else None)
        self.show(page)


class _JsonHandler(_Handler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def reply(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(body))

    def refuse(self, status: int, code: str, message: str) -> None:
        self.reply({"error": code, "message": message}, status)

    def user(self) -> str | None:
        if self.hub_user is None:
            if self.not_allowed:
                self.refuse(403, "not_allowed", NOT_ALLOWED.format(name=self.service.name))
            else:
                self.refuse(403, "not_authenticated", "Call this with a JupyterHub API token of a hub user.")
        return self.hub_user

    def owned(self, flow_id: str) -> tuple[str, Flow] | None:
        user = self.user()
        if user is None:
            return None
        if not is_flow_id(flow_id):
            self.refuse(400, "bad_flow_id", "A flow id is 16-64 characters of A-Z, a-z, 0-9, '_' and '-'.")
            return None
        flow = self.service.owned_flow(flow_id, user)
        if flow is None or flow.claimed:
            self.refuse(404, "unknown_flow", "No login with this id is known here (it ended or never began).")
            return None
        return user, flow

    def body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.body or b"null")  # not get_json_body: it logs what it cannot parse
        except (ValueError, RecursionError):
            return {}
        return body if isinstance(body, dict) else {}


class StatusHandler(_JsonHandler):
    def get(self) -> None:
        if self.user() is not None:
            self.reply(self.logins.status())


class FlowHandler(_JsonHandler):
    def get(self, flow_id: str) -> None:
        owned = self.owned(flow_id)
        if owned is None:
            return
        flow = owned[1]
        status = "pending" if flow.status == "exchanging" else flow.status
        self.reply({"status": status, "message": flow.message, "paste": flow.paste, "app": flow.app_id})


class ClaimHandler(_JsonHandler):
    def post(self, flow_id: str) -> None:
        owned = self.owned(flow_id)
        if owned is None:
            return
        user, flow = owned
        claimed = self.logins.store.claim(flow_id)
        if claimed is None:
            self.refuse(409, "not_done", f"This login has no token to hand over (it is {flow.status}).")
            return
        server_url, tokens = claimed
        self.service.owners.hand_out(tokens.refresh_token, user)
        self.reply({"server_url": server_url, "token": tokens.token, "refresh_token": tokens.refresh_token,
                    "app_id": flow.app_id or None})


class PastedHandler(_JsonHandler):
    async def post(self, flow_id: str) -> None:
        if self.owned(flow_id) is None:
            return
        try:
            await self.logins.finish_pasted(flow_id, self.body().get("pasted"))
        except Refused as refused:
            self.refuse(refused.status, refused.code, refused.message)
            return
        self.reply({"status": "done"})


class RefreshHandler(_JsonHandler):
    async def post(self) -> None:
        user = self.user()
        if user is None:
            return
        body = self.body()
        refresh_token = body.get("refresh_token")
        if isinstance(refresh_token, str) and refresh_token and \
                self.service.owners.of_refresh_token(refresh_token) != user:
            self.refuse(403, "not_yours", "This sign-in was not handed to you by the hub's Speckle login service "
                        "(or the service has restarted since): log in again.")
            return
        try:
            pair = await self.logins.refresh(body.get("server_url"), refresh_token, body.get("app_id"))
        except Refused as refused:
            self.refuse(refused.status, refused.code, refused.message)
            return
        except SpeckleAuthError as err:
            self.refuse(error_status(err.code), err.code, err.message)
            return
        self.service.owners.hand_out(pair.refresh_token, user)
        self.reply({"token": pair.token, "refresh_token": pair.refresh_token})


class OAuthCallbackHandler(HubOAuthCallbackHandler):
    """JupyterHub's own end of the hub login, with the service's log line (its code and state hidden)."""

    def initialize(self, service: LoginService, hub_auth: HubOAuth) -> None:
        self.hub_auth = hub_auth

    def _request_summary(self) -> str:
        return f"{self.request.method} {scrubbed(self.request.uri or '')} ({self.request.remote_ip})"


def make_app(service: LoginService, hub_auth: HubOAuth, *, cookie_secret: bytes | None = None) -> web.Application:
    prefix = service.prefix
    args = {"service": service, "hub_auth": hub_auth}
    routes: list[Any] = [
        (prefix + path, handler, args) for path, handler in (
            ("status", StatusHandler), ("login", LoginHandler), ("callback", CallbackHandler),
            ("result", ResultHandler), ("flows/([^/]+)", FlowHandler), ("flows/([^/]+)/claim", ClaimHandler),
            ("flows/([^/]+)/code", PastedHandler), ("refresh", RefreshHandler),
            ("oauth_callback", OAuthCallbackHandler),
        )
    ]
    return web.Application(routes, cookie_secret=cookie_secret or os.urandom(32), xsrf_cookies=False)


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
    service = LoginService(logins, owners, prefix, port, environ.get("JUPYTERHUB_SERVICE_NAME", "speckle-auth"),
                           callback, client)
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
