"""On a JupyterHub with the Speckle login service: the user's server holds no app secret and forwards the routes
that need one to the service, authenticated as its user by its own JupyterHub API token.

The panel's browser tab signs in at the service itself (`login_base`); the kernel keeps calling its own server's
`flows/<id>`, `claim`, `code` and `refresh`, which arrive here and go on to the service. A service that is down, or
that restarted and lost a login it had started, is told to the kernel as a failed login with a message, since the
kernel reports a flow's `message` and would otherwise wait for a login that can no longer finish.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core._flows import is_flow_id
from ..core._requests import BAD_FLOW_ID, Reply, refused
from ..core._wire import flow_failed, refusal
from ._handlers import ClaimHandler, FlowHandler, PastedHandler, RefreshHandler, StatusHandler, _JsonHandler

__all__ = ["SERVICE_DOWN", "SERVICE_LOST_FLOW", "Relay", "public_prefix_problem", "relay_routes"]

SERVICE_DOWN = (
    "The hub's Speckle login service is not answering, so the sign-in cannot finish: try again in a minute, and "
    "tell the hub's admin if it keeps failing."
)
SERVICE_LOST_FLOW = (
    "The hub's Speckle login service restarted and lost this sign-in: click \u201cLog in with Speckle\u201d again."
)
_MAX_SEEN = 1000  # flow ids the service confirmed, to tell a lost login from one not started yet


class Relay:
    def __init__(self, service_url: str, public_prefix: str, api_token: str, client: httpx.AsyncClient) -> None:
        self.service_url = service_url.rstrip("/") + "/"
        self.public_prefix = public_prefix.rstrip("/") + "/"
        self._token = api_token
        self.client = client
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._last_status: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Relay({self.service_url!r})"

    async def call(self, method: str, path: str, body: bytes | None = None) -> Reply | None:
        """The service's answer to `method path`, to pass on as it is; None when it cannot be reached or answers
        no JSON. A body is passed on as it came, unread: it may hold a token or a code."""
        headers = {"Authorization": f"token {self._token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self.client.request(method, self.service_url + path, headers=headers, content=body)
            data = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        return Reply(response.status_code, data) if isinstance(data, dict) else None

    async def status(self, local: dict[str, Any]) -> dict[str, Any]:
        """This server's status with the service's servers, and the service's prefix for the sign-in tab. While
        the service is down, its last answer (or the environment's server), so the failure is told at login."""
        answer = await self.call("GET", "status")
        if answer is not None and answer.status == 200:
            self._last_status = answer.body
        known = self._last_status or {}
        servers = known.get("servers") or local.get("servers") or []
        return {**local, "servers": servers, "default_server": known.get("default_server", local.get(
            "default_server")), "login_base": self.public_prefix}

    async def flow(self, flow_id: str) -> Reply:
        answer = await self.call("GET", f"flows/{flow_id}")
        if answer is None or answer.status >= 500:
            return Reply(200, flow_failed(SERVICE_DOWN))
        if answer.status == 200:
            self._remember(flow_id)
        elif answer.status == 404 and flow_id in self._seen:
            return Reply(200, flow_failed(SERVICE_LOST_FLOW))
        return answer

    async def forward(self, path: str, body: bytes) -> Reply:
        """A POST (claim, paste-back, refresh), passed on; a service that cannot be reached becomes a 502."""
        answer = await self.call("POST", path, body)
        if answer is None:
            return Reply(502, refusal("service_unavailable", SERVICE_DOWN))
        return answer

    def _remember(self, flow_id: str) -> None:
        self._seen[flow_id] = None
        self._seen.move_to_end(flow_id)
        while len(self._seen) > _MAX_SEEN:
            self._seen.popitem(last=False)


def public_prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot be where the browser signs in (an absolute path on the hub, or an http(s) URL)."""
    parts = urlsplit(prefix)
    if prefix.startswith("/") and not parts.netloc:
        return None
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return f"the login service's prefix {prefix!r} is neither a path starting with '/' nor an http(s) URL"


MAX_BODY = 16 * 1024  # a claim, a pasted address or a refresh request is far smaller


class _RelayHandler(_JsonHandler):
    @property
    def relay(self) -> Relay:
        return cast(Relay, self.extensionapp.relay)  # type: ignore[attr-defined]

    async def forward(self, path: str) -> None:
        body = self.request.body or b"{}"
        if len(body) > MAX_BODY:
            self.answer(refused(413, "too_large", "The request is too large."))
            return
        self.answer(await self.relay.forward(path, body))

    def valid_flow_id(self, flow_id: str) -> bool:
        if is_flow_id(flow_id):
            return True
        self.answer(refused(400, "bad_flow_id", BAD_FLOW_ID))
        return False


class RelayStatusHandler(_RelayHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.answer(Reply(200, await self.relay.status(self.routes.status().body)))


class RelayFlowHandler(_RelayHandler):
    @web.authenticated
    @authorized
    async def get(self, flow_id: str) -> None:
        if self.valid_flow_id(flow_id):
            self.answer(await self.relay.flow(flow_id))


class RelayClaimHandler(_RelayHandler):
    @web.authenticated
    @authorized
    async def post(self, flow_id: str) -> None:
        if self.valid_flow_id(flow_id):
            await self.forward(f"flows/{flow_id}/claim")


class RelayPastedHandler(_RelayHandler):
    @web.authenticated
    @authorized
    async def post(self, flow_id: str) -> None:
        if self.valid_flow_id(flow_id):
            await self.forward(f"flows/{flow_id}/code")


class RelayRefreshHandler(_RelayHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        await self.forward("refresh")


_RELAYED: dict[type[web.RequestHandler], type[web.RequestHandler]] = {
    StatusHandler: RelayStatusHandler,
    FlowHandler: RelayFlowHandler,
    ClaimHandler: RelayClaimHandler,
    PastedHandler: RelayPastedHandler,
    RefreshHandler: RelayRefreshHandler,
}


def relay_routes(
    routes: list[tuple[str, type[web.RequestHandler]]],
) -> list[tuple[str, type[web.RequestHandler]]]:
    """The extension's routes with those that need the app secret forwarded to the service. The sign-in tab's
    own routes (login, callback, result) stay, and refuse: the tab goes to the service instead."""
    return [(pattern, _RELAYED.get(handler, handler)) for pattern, handler in routes]
