"""The server extension's routes as a browser uses them, played by an httpx client that keeps cookies and
follows no redirect, on a real Jupyter server (pytest-jupyter, base_url `/a%40b/`) with the Speckle emulator
behind it. The fixtures that make that server and these browsers are in tests/serverext/conftest.py.

The browser logs in to Jupyter with its login form (a cookie, as a real browser does), so XSRF is checked on
POSTs exactly as for the panel. The user's sign-in on Speckle is played by `support.speckle.consent`.
"""

from __future__ import annotations

import asyncio
import contextvars
import html
import json
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx

from speckle_nb_auth.emulator import Emulator
from support import speckle

BASE = "/a%40b/"
PAT_ONLY = "https://pat-only.example.org"
FLOW = "flow-aaaaaaaaaaaaaaaa"
FLOW2 = "flow-bbbbbbbbbbbbbbbb"


class Browser:
    """One browser: a cookie jar, the Jupyter login cookie once `log_in` ran, and no automatic redirects."""

    def __init__(self, port: int) -> None:
        self.origin = f"http://127.0.0.1:{port}"
        self.http = httpx.AsyncClient(base_url=self.origin, follow_redirects=False, timeout=20)

    async def log_in(self, token: str) -> None:
        await self.http.get(f"{BASE}login")
        reply = await self.http.post(f"{BASE}login", data={"_xsrf": self.xsrf, "password": token})
        assert reply.status_code == 302, reply.text

    @property
    def xsrf(self) -> str:
        return self.http.cookies["_xsrf"]

    async def get(self, route: str, **params: str) -> httpx.Response:
        if route == "speckle-auth/login" and "_xsrf" in self.http.cookies:
            params = {"_xsrf": self.xsrf, **params}  # as the panel opens it: the route changes state
        return await self.http.get(f"{BASE}{route}", params=params)

    async def post(self, route: str, body: Any = None, *, xsrf: bool = True) -> httpx.Response:
        headers = {"X-XSRFToken": self.xsrf} if xsrf else {}
        return await self.http.post(f"{BASE}{route}", json=body, headers=headers)

    async def follow(self, reply: httpx.Response) -> httpx.Response:
        assert reply.status_code in (302, 303), (reply.status_code, reply.text)
        return await self.http.get(httpx.URL(self.origin).join(reply.headers["Location"]))

    def flow_cookie(self) -> tuple[str, str] | None:
        for cookie in self.http.cookies.jar:
            if cookie.name.startswith("speckle-auth-flow-"):
                return cookie.name, cookie.value or ""
        return None


def browser_for(port: int, loop: asyncio.AbstractEventLoop, token: str | None) -> Iterator[Browser]:
    browser = Browser(port)
    if token is not None:
        loop.run_until_complete(browser.log_in(token))
    yield browser
    loop.run_until_complete(browser.http.aclose())


# Set in a test's own task: what its HTTP clients log is the test's, not the server's. The server's handlers
# run in tasks of their own, started from the listening socket's context, where this stays False.
TEST_CLIENT = contextvars.ContextVar("TEST_CLIENT", default=False)


class Recorder(logging.Handler):
    """Every log record of the Jupyter server at any level, whichever logger it went to (some do not
    propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: dict[int, logging.LogRecord] = {}
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        # the emulator logs from its own thread; the test's clients from the test's task
        if record.thread == threading.main_thread().ident and not TEST_CLIENT.get():
            self.records[id(record)] = record

    def mark(self) -> int:
        """Where the log stands now: `text(since=mark)` is what came after."""
        return len(self.records)

    def text(self, since: int = 0) -> str:
        return "\n".join(self.format(record) for record in list(self.records.values())[since:])


async def start_login(browser: Browser, emulator: Emulator, flow: str = FLOW) -> tuple[str, str]:
    """Click "Log in with Speckle": (app id, challenge) from the redirect to Speckle's sign-in page."""
    reply = await browser.get("speckle-auth/login", server=emulator.url, flow=flow)
    assert reply.status_code == 302, reply.text
    verify = re.escape(emulator.url) + r"/authn/verify/([^/]+)/([^/]+)"
    match = re.fullmatch(verify, reply.headers["Location"])
    assert match, reply.headers["Location"]
    return match.group(1), unquote(match.group(2))


async def consent(emulator: Emulator, app_id: str, challenge: str) -> str:
    """The user clicks "Authorize" on Speckle: the URL Speckle sends the browser back to, code included."""
    return await asyncio.to_thread(speckle.consent, emulator, challenge, app_id=app_id)


async def callback(browser: Browser, redirect: str) -> httpx.Response:
    """The browser arrives back from Speckle; returns the page it finally shows."""
    reply = await browser.http.get(redirect)
    assert reply.status_code == 302, reply.text
    location = reply.headers["Location"]
    assert "access_code" not in location and location.startswith(f"{BASE}speckle-auth/result")
    return await browser.follow(reply)


async def log_in_fully(browser: Browser, emulator: Emulator, flow: str = FLOW) -> httpx.Response:
    app_id, challenge = await start_login(browser, emulator, flow)
    return await callback(browser, await consent(emulator, app_id, challenge))


async def whoami(emulator: Emulator, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as speckle:
        reply = await speckle.post(
            f"{emulator.url}/graphql",
            json={"query": "{ activeUser { id name } }"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["activeUser"]


def script_message(page: httpx.Response) -> dict[str, Any] | None:
    """What the page tells the panel, without the message text (which a failure page adds, as it shows it)."""
    match = re.search(r"channel\.postMessage\((\{.*?\})\);", page.text)
    if not match:
        return None
    told = json.loads(match.group(1))
    text = told.pop("message", None)
    assert text is None or html.escape(text) in page.text
    return told
