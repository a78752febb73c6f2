"""A tiny stand-in for JupyterHub's REST API, enough for `jupyterhub.services.auth.HubAuth` to identify tokens:
`GET /hub/api/user` answers the model of the token's owner (a hub user, their scopes). On its own event loop in a
thread, where the hub's Speckle login service can run too, so a test or a benchmark drives the service's real
HubAuth code over HTTP without a hub. Nothing else of JupyterHub is imitated.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

from tornado import web

T = TypeVar("T")
SERVICE_SCOPE = "access:services!service=speckle-auth"


class _UserHandler(web.RequestHandler):
    def initialize(self, hub: FakeHub) -> None:
        self.hub = hub

    def get(self) -> None:
        header = self.request.headers.get("Authorization", "")
        token = header.split(None, 1)[1] if header.lower().startswith(("token ", "bearer ")) else ""
        self.hub.calls += 1
        model = self.hub.tokens.get(token)
        if model is None:
            self.set_status(403)
            self.finish(json.dumps({"status": 403, "message": "Not authorized"}))
            return
        self.finish(json.dumps(model))


class FakeHub:
    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-hub", daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"

    def token_for(self, name: str, scopes: Iterable[str] = ("self", SERVICE_SCOPE), kind: str = "user") -> str:
        """A new token of hub user (or service) `name` holding `scopes`."""
        token = secrets.token_hex(16)
        self.tokens[token] = {"kind": kind, "name": name, "admin": False, "groups": [], "scopes": list(scopes),
                              "session_id": None}
        return token

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def serve(self, app: web.Application) -> int:
        """Listen with `app` on a free loopback port of this loop; the port."""
        async def listen() -> int:
            server = app.listen(0, "127.0.0.1")
            return int(next(iter(server._sockets.values())).getsockname()[1])

        return self.run(listen())

    def __enter__(self) -> FakeHub:
        self._thread.start()
        app = web.Application([(r"/hub/api/user", _UserHandler, {"hub": self})])
        self.port = self.serve(app)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
