"""`Emulator`: a local Speckle server running on its own asyncio loop in a daemon thread.

Tests start one per module or per test; the CLI (`__main__`) starts one and waits for a signal. Every seeded
secret (tokens, app secret, control token, and the users' passwords unless given) is made fresh at construction
with `secrets`, so no two emulators share one.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from .._protocol import is_loopback_host
from ._app import make_app
from ._faults import RequestHeaders, Traffic
from ._state import DEFAULT_CONNECTOR_REDIRECT_URL, DEFAULT_REDIRECT_URL, ChallengeMethod, State

__all__ = ["Emulator"]

_START_TIMEOUT = 10.0


class Emulator:
    """A Speckle server on loopback that answers as the real one does (see `speckle-protocol.md`).

    `challenge_method="S256"` makes the code exchange hash the `challenge` it receives (the variant Speckle's
    docs describe); `trusted=True` marks the seeded app trusted, so its users see no consent screen.
    Speckle's built-in public apps are there too (`sca`, `spklwebapp`, `explorer`); `connector_redirect_url`
    is where `sca` sends the browser back (a real server's `http://localhost:29363`), so a test can listen on
    a free port instead. `passwords` maps seeded users' emails to their passwords (default: new random ones).
    It listens on loopback only: anyone who reaches it can sign in as the seeded users, so another address
    needs `allow_remote=True`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        redirect_url: str = DEFAULT_REDIRECT_URL,
        challenge_method: ChallengeMethod = "plain",
        trusted: bool = False,
        connector_redirect_url: str = DEFAULT_CONNECTOR_REDIRECT_URL,
        passwords: Mapping[str, str] | None = None,
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not is_loopback_host(host):
            raise ValueError(
                f"{host!r} is not a loopback address: anyone on the network could sign in to the emulator as "
                "its seeded users. Pass allow_remote=True (the CLI's --allow-remote) to listen there anyway."
            )
        self.host = host
        self._port = port
        self._state = State(
            redirect_url=redirect_url,
            connector_redirect_url=connector_redirect_url,
            challenge_method=challenge_method,
            trusted=trusted,
            passwords=passwords,
        )
        self._control_token = secrets.token_urlsafe(32)
        self._traffic = Traffic()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def __repr__(self) -> str:
        where = self.url if self._thread else "not started"
        return f"Emulator({where})"

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Listen, and return once requests are served."""
        if self._thread is not None:
            raise RuntimeError("this emulator is already running")
        # Bound here rather than in the thread, so a busy port raises in the caller.
        sockets = bind_sockets(self._port, self.host)
        self._port = sockets[0].getsockname()[1]
        self._state.set_origin(self._url_for(self._port))
        ready = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(sockets, ready)), name="speckle-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("the Speckle emulator did not start")
        return self

    async def _serve(self, sockets: list[socket.socket], ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = HTTPServer(make_app(self._state, self._traffic, self._control_token))
        server.add_sockets(sockets)
        ready.set()
        await self._stopping.wait()
        server.stop()
        await server.close_all_connections()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(_START_TIMEOUT)
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- what a client needs --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://HOST:PORT`, no trailing slash."""
        if self._thread is None:
            raise RuntimeError("start the emulator first: its port is chosen when it starts")
        return self._url_for(self._port)

    def _url_for(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    @property
    def credentials(self) -> dict[str, Any]:
        """The seeded secrets: `url`, `pat`, `session_token`, `app_id`, `app_secret`, `redirect_url`,
        `connector_redirect_url` (where the public app `sca` redirects), `control_token` (for the control API
        at `/__emulator__/faults` and `/__emulator__/clock`), `users` (each with `id`, `name`, `email`,
        `password`, `pat`, `session_token`)."""
        return {**self._state.credentials(self.url), "control_token": self._control_token}

    # --- shaping the server ---------------------------------------------------------------------------------

    def set_redirect_url(self, url: str, app_id: str | None = None) -> None:
        """Change an app's registered redirect URL (default: the seeded app's)."""
        self._state.set_redirect_url(url, app_id)

    def create_app(
        self, name: str, redirect_url: str, scopes: Iterable[str], trusted: bool = False
    ) -> dict[str, str]:
        """Register another app (its author is the first seeded user); an unknown scope raises ValueError."""
        app = self._state.create_app(name, redirect_url, scopes, trusted=trusted)
        return {"app_id": app.id, "app_secret": app.secret}

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock on: codes expire after 600 s, refresh tokens after ~6 months."""
        self._state.advance_clock(seconds)

    def inject_fault(
        self,
        route: str,
        kind: str,
        *,
        count: int | None = 1,
        delay: float = 2.0,
        status: int = 502,
        after: int = 0,
        workspace: str = "acme",
    ) -> None:
        """Make the next `count` requests to `route` (None: all, until `clear_faults`) `slow` (answered after
        `delay` seconds), `error` (HTTP `status`, "Internal Server Error"), `drop` (connection closed) or `sso`
        (the user's SSO session for `workspace` has lapsed), once `after` requests have passed untouched."""
        self._traffic.inject(route, kind, count=count, delay=delay, status=status, after=after, workspace=workspace)

    def clear_faults(self) -> None:
        self._traffic.clear()

    # --- what came in ---------------------------------------------------------------------------------------

    def requests_seen(self, route: str) -> int:
        """How many requests reached `route` (a path such as "/auth/token"), faulted ones included."""
        return self._traffic.seen(route)

    def issued_secrets(self) -> list[str]:
        """Every token, refresh token, app secret and unused access code it knows, for tests that check for
        leaks of secrets they never saw themselves (an OAuth token travels browser -> kernel only)."""
        return self._state.issued_secrets()

    def last_request_headers(self, route: str) -> RequestHeaders:
        """The headers of the last request to `route` (empty when none came), in a dict whose lookups
        ignore case."""
        return self._traffic.last_headers(route)
