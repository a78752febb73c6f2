"""The server extension over HTTP: a real Jupyter server (pytest-jupyter, base_url `/a%40b/`) and the
Speckle emulator, with a browser played by an httpx client that keeps cookies and follows no redirect.

The browser logs in to Jupyter with its login form (a cookie, as a real browser does), so XSRF is checked on
POSTs exactly as for the panel. The user's sign-in on Speckle is played with the emulator's backend route
`/auth/accesscode` and the user's web session token, which is what Speckle's consent page calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import html
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from traitlets.config import Config

import speckle_nb_auth
from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp

BASE = "/a%40b/"
PAT_ONLY = "https://pat-only.example.org"
HUB_CALLBACK = "https://hub.example.org/hub/user-redirect/speckle-auth/callback"
FLOW = "flow-aaaaaaaaaaaaaaaa"
FLOW2 = "flow-bbbbbbbbbbbbbbbb"


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture
def challenge_method() -> str:
    """The challenge method of both the emulator and the extension (tests that want them apart say so)."""
    return "plain"


@pytest.fixture
def callback_url(jp_http_port: int) -> str:
    return f"http://127.0.0.1:{jp_http_port}{BASE}speckle-auth/callback"


@pytest.fixture
def emulator(challenge_method: str, callback_url: str) -> Iterator[Emulator]:
    """A fresh emulator whose app sends users back to this test's Jupyter server."""
    method: Any = challenge_method
    with Emulator(redirect_url=callback_url, challenge_method=method) as emu:
        yield emu


@pytest.fixture
def extension_config(
    emulator: Emulator, callback_url: str, challenge_method: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    creds = emulator.credentials
    # by name: a secret written in the configuration is in Jupyter's own debug log ("Config changed: ...")
    monkeypatch.setenv("EMULATOR_APP_SECRET", creds["app_secret"])
    app = {"app_id": creds["app_id"], "app_secret_env": "EMULATOR_APP_SECRET"}
    return {
        "servers": [{"url": emulator.url, "name": "Emulator", **app}, {"url": PAT_ONLY, "name": "PAT only"}],
        "redirect_uri": callback_url,
        "challenge_method": challenge_method,
        "public_app": False,  # a server without an app takes tokens only (test_serverext_public_app.py: the rest)
    }


@pytest.fixture
def jp_server_config(extension_config: dict[str, Any], server_log: Recorder) -> Config:
    # The extension's logger is configured by traitlets when the extension loads, which drops handlers
    # added before: the recorder is added the way an admin adds a log file, so it hears the start-up too.
    recorder_config = {
        "handlers": {"recorder": {"()": lambda: server_log}},
        "loggers": {"SpeckleAuthApp": {"handlers": ["console", "recorder"]}},
    }
    return Config(
        {
            "ServerApp": {
                # terminals off: faster, and its websocket would be all the auth-warning check sees
                "jpserver_extensions": {"speckle_nb_auth": True, "jupyter_server_terminals": False},
                "allow_unauthenticated_access": False,
            },
            "SpeckleAuthApp": {"logging_config": recorder_config, **extension_config},
        }
    )


@pytest.fixture
def ext(jp_serverapp: Any) -> SpeckleAuthApp:
    apps = jp_serverapp.extension_manager.extension_apps["speckle_nb_auth"]
    return next(iter(apps))


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


def _browser(port: int, loop: asyncio.AbstractEventLoop, token: str | None) -> Iterator[Browser]:
    browser = Browser(port)
    if token is not None:
        loop.run_until_complete(browser.log_in(token))
    yield browser
    loop.run_until_complete(browser.http.aclose())


@pytest.fixture
def browser(
    jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_asyncio_loop: Any
) -> Iterator[Browser]:
    """The user's browser, logged in to Jupyter."""
    yield from _browser(jp_http_port, jp_asyncio_loop, jp_serverapp.identity_provider.token)


@pytest.fixture
def other_browser(
    jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_asyncio_loop: Any
) -> Iterator[Browser]:
    """Another browser logged in to Jupyter (the user's other one, or an attacker's link): no flow cookie."""
    yield from _browser(jp_http_port, jp_asyncio_loop, jp_serverapp.identity_provider.token)


@pytest.fixture
def anonymous(
    jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_asyncio_loop: Any
) -> Iterator[Browser]:
    """A browser without a Jupyter session."""
    yield from _browser(jp_http_port, jp_asyncio_loop, None)


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

    def text(self) -> str:
        return "\n".join(self.format(record) for record in self.records.values())


@pytest.fixture
def server_log() -> Iterator[Recorder]:
    recorder = Recorder()
    names = ["", "ServerApp", "SpeckleAuthApp", "tornado", "httpx", "httpcore"]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.addHandler(recorder)
        logger.setLevel(logging.DEBUG)
    yield recorder
    for logger, level in saved:
        logger.removeHandler(recorder)
        logger.setLevel(level)


# --- helpers ------------------------------------------------------------------------------------------------


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
    async with httpx.AsyncClient() as speckle:
        reply = await speckle.get(
            f"{emulator.url}/auth/accesscode",
            params={
                "appId": app_id,
                "challenge": challenge,
                "token": emulator.credentials["session_token"],
                "preventRedirect": "true",
            },
        )
    assert reply.status_code == 200, reply.text
    return reply.json()["redirectUrl"]


def code_of(redirect: str) -> str:
    return parse_qs(urlsplit(redirect).query)["access_code"][0]


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


# --- status -------------------------------------------------------------------------------------------------


async def test_status_lists_the_servers_and_never_a_secret(browser: Browser, emulator: Emulator) -> None:
    # When
    reply = await browser.get("speckle-auth/status")
    # Then
    assert reply.status_code == 200
    assert reply.json() == {
        "version": speckle_nb_auth.__version__,
        "mailbox": True,
        "servers": [
            {"url": emulator.url, "name": "Emulator", "oauth": True, "app": "registered"},
            {"url": PAT_ONLY, "name": "PAT only", "oauth": False, "app": None},
        ],
        "default_server": emulator.url,
    }
    creds = emulator.credentials
    assert creds["app_secret"] not in reply.text and creds["app_id"] not in reply.text
    assert reply.headers["Cache-Control"] == "no-store"


# --- the whole flow -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("challenge_method", ["plain", "S256"])
async def test_the_whole_login_hands_a_working_token_over_once(
    browser: Browser, emulator: Emulator, challenge_method: str
) -> None:
    # When: the panel opens the login tab, twice (the second login supersedes the first)
    await start_login(browser, emulator, FLOW)
    app_id, challenge = await start_login(browser, emulator, FLOW2)
    # Then: off to Speckle's sign-in page, with a challenge of the configured method
    assert app_id == emulator.credentials["app_id"]
    if challenge_method == "plain":
        assert re.fullmatch(r"[A-Za-z0-9_-]{64}", challenge)
    else:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge)
    first = await browser.get(f"speckle-auth/flows/{FLOW}")
    assert first.json()["status"] == "superseded"
    second = await browser.get(f"speckle-auth/flows/{FLOW2}")
    assert second.json() == {"status": "pending", "message": "", "paste": False,
                             "app": emulator.credentials["app_id"]}

    # When: the user authorizes on Speckle and comes back
    redirect = await consent(emulator, app_id, challenge)
    page = await callback(browser, redirect)

    # Then: the result page names the account (name and email: someone else's shows as not yours) and tells
    # the panel
    ada = emulator.credentials["users"][0]
    account = f"{ada['name']} ({ada['email']})"
    assert page.status_code == 200
    assert f"as {account}" in page.text and "close this tab" in page.text and "Not your account?" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW2, "status": "done"}
    status = await browser.get(f"speckle-auth/flows/{FLOW2}")
    assert status.json() == {"status": "done", "message": f"Signed in to Speckle as {account}.", "paste": False,
                             "app": emulator.credentials["app_id"]}
    assert emulator.requests_seen("/auth/token") == 1

    # When: the panel claims the token
    claim = await browser.post(f"speckle-auth/flows/{FLOW2}/claim")
    # Then: it works on Speckle, and it is handed over once
    assert claim.status_code == 200 and claim.headers["Cache-Control"] == "no-store"
    body = claim.json()
    assert set(body) == {"server_url", "token", "refresh_token", "app_id"} and body["server_url"] == emulator.url
    assert body["app_id"] == emulator.credentials["app_id"]  # public: it names the scopes the token holds
    assert (await whoami(emulator, body["token"]))["id"] == ada["id"]
    again = await browser.post(f"speckle-auth/flows/{FLOW2}/claim")
    assert again.status_code == 404 and again.json()["error"] == "unknown_flow"
    assert (await browser.get(f"speckle-auth/flows/{FLOW2}")).status_code == 404
    # the result page can still be shown (a reload, or a claim that came first), without any token
    reloaded = await browser.get("speckle-auth/result")
    assert reloaded.status_code == 200 and ada["name"] in reloaded.text

    # When: the panel refreshes the token
    fresh = await browser.post(
        "speckle-auth/refresh", {"server_url": emulator.url, "refresh_token": body["refresh_token"]}
    )
    # Then
    assert fresh.status_code == 200, fresh.text
    pair = fresh.json()
    assert set(pair) == {"token", "refresh_token"} and pair["token"] != body["token"]
    assert (await whoami(emulator, pair["token"]))["id"] == ada["id"]


async def test_the_login_cookie_is_signed_httponly_lax_and_scoped(
    browser: Browser, emulator: Emulator, jp_http_port: int
) -> None:
    # When
    reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
    # Then
    header = reply.headers["Set-Cookie"]
    name, value = header.split(";")[0].split("=", 1)
    digest = hashlib.sha256(BASE.encode()).hexdigest()[:10]
    assert name == f"speckle-auth-flow-{jp_http_port}-{digest}"  # unique to this server
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")[1:]}
    assert attributes["path"] == f"Path={BASE}"
    assert "httponly" in attributes and attributes["samesite"].lower() == "samesite=lax"
    assert attributes["max-age"] == "Max-Age=600"
    assert "secure" not in attributes  # plain http here
    assert value.strip('"').startswith("2|") and FLOW not in value  # signed (Tornado's v2 format)
    assert reply.headers["Referrer-Policy"] == "no-referrer" and reply.headers["Cache-Control"] == "no-store"

    # When: the same over https (behind a proxy)
    secure = await browser.http.get(
        f"{BASE}speckle-auth/login",
        params={"server": emulator.url, "flow": FLOW2, "_xsrf": browser.xsrf},
        headers={"X-Forwarded-Proto": "https"},
    )
    # Then
    assert "secure" in secure.headers["Set-Cookie"].lower()


async def test_a_forged_cookie_is_ignored(
    browser: Browser, other_browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    found = browser.flow_cookie()
    assert found is not None
    other_browser.http.cookies.set(found[0], FLOW, domain="127.0.0.1", path=BASE)  # the right id, unsigned
    # When
    page = await callback(other_browser, redirect)
    # Then
    assert page.status_code == 400 and "No login in progress" in page.text
    assert emulator.requests_seen("/auth/token") == 0


async def test_the_server_is_compared_after_normalisation_and_defaults(
    browser: Browser, emulator: Emulator
) -> None:
    verify = f"{emulator.url}/authn/verify/"
    host = emulator.url.removeprefix("http://")
    for given in (f"{emulator.url}/", host, emulator.url.upper().replace("HTTP://", "http://")):
        # When
        flow = f"flow-{hashlib.sha256(given.encode()).hexdigest()[:20]}"
        reply = await browser.get("speckle-auth/login", server=given, flow=flow)
        # Then
        assert reply.status_code == 302 and reply.headers["Location"].startswith(verify)
    # When: no server given
    reply = await browser.get("speckle-auth/login", flow=FLOW)
    # Then: the default one
    assert reply.status_code == 302 and reply.headers["Location"].startswith(verify)


UNKNOWN = "not set up to log in to that Speckle server"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"server": "https://evil.example.org", "flow": FLOW}, UNKNOWN),
        ({"server": "http://127.0.0.1:1", "flow": FLOW}, UNKNOWN),
        ({"server": "javascript:alert(1)", "flow": FLOW}, UNKNOWN),
        ({"server": PAT_ONLY, "flow": FLOW}, "personal access token"),
        ({"flow": "short"}, "valid login id"),
        ({"flow": "a" * 20 + "<script>"}, "valid login id"),
        ({}, "valid login id"),
    ],
)
async def test_login_refuses_what_it_cannot_start_with_a_page_saying_why(
    browser: Browser, emulator: Emulator, params: dict[str, str], says: str
) -> None:
    # When
    reply = await browser.get("speckle-auth/login", **params)
    # Then
    assert reply.status_code == 400
    assert says in reply.text and "Log in with Speckle" in reply.text
    assert "Location" not in reply.headers and "Set-Cookie" not in reply.headers
    if params.get("flow") == FLOW:  # the page tells the waiting panel why, since its flow never started
        assert script_message(reply) == {"type": "speckle-auth", "flow": FLOW, "status": "failed"}
    else:  # nothing to tell, and nothing echoed
        assert "<script" not in reply.text


async def test_a_flow_id_starts_one_login_only(browser: Browser, emulator: Emulator) -> None:
    await start_login(browser, emulator)
    # When
    reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
    # Then
    assert reply.status_code == 409 and "already used" in reply.text


# --- failures at the callback -------------------------------------------------------------------------------


async def test_denied_on_speckle(browser: Browser, emulator: Emulator, callback_url: str) -> None:
    await start_login(browser, emulator)
    # When: the user clicks Deny
    page = await callback(browser, f"{callback_url}?denied=true")
    # Then
    assert page.status_code == 403 and "declined" in page.text and "Log in with Speckle" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW, "status": "denied"}
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "denied"
    assert emulator.requests_seen("/auth/token") == 0


async def test_a_callback_without_the_flow_cookie_exchanges_nothing(
    browser: Browser, other_browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    # When: the code arrives in a browser that did not start this login (login CSRF, another hub user)
    page = await callback(other_browser, redirect)
    # Then
    assert page.status_code == 400 and "No login in progress" in page.text
    assert script_message(page) is None
    assert emulator.requests_seen("/auth/token") == 0
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "pending"


async def test_an_expired_flow_exchanges_nothing(
    browser: Browser, emulator: Emulator, ext: SpeckleAuthApp
) -> None:
    now = [time.monotonic()]
    ext.logins.store.clock = lambda: now[0]
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    # When: the user comes back after more than 10 minutes
    now[0] += 601
    emulator.advance_clock(601)
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 410 and "expired" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW, "status": "expired"}
    assert emulator.requests_seen("/auth/token") == 0
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "expired"


async def test_a_replayed_callback_or_a_second_code_exchanges_nothing(
    browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    assert (await callback(browser, redirect)).status_code == 200
    # When: the same callback again (history, a reload), then another code Speckle issued for the challenge
    again = await callback(browser, redirect)
    second = await callback(browser, await consent(emulator, app_id, challenge))
    # Then
    for page in (again, second):
        assert page.status_code == 409 and "already completed" in page.text
    assert emulator.requests_seen("/auth/token") == 1
    claim = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
    assert claim.status_code == 200


async def test_a_challenge_mismatch_fails_with_a_page_saying_so(browser: Browser, emulator: Emulator) -> None:
    app_id, challenge = await start_login(browser, emulator)
    # When: Speckle issued the code for another challenge
    redirect = await consent(emulator, app_id, challenge[::-1])
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 400 and "challenge did not match" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW, "status": "failed"}
    status = (await browser.get(f"speckle-auth/flows/{FLOW}")).json()
    assert status["status"] == "failed" and "challenge" in status["message"]
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 409


class TestMismatchedChallengeMethods:
    """The extension set to S256 against a server that compares challenges as plain text (a real Speckle)."""

    @pytest.fixture
    def extension_config(self, extension_config: dict[str, Any]) -> dict[str, Any]:
        return {**extension_config, "challenge_method": "S256"}

    async def test_the_login_fails_and_says_to_check_the_method(
        self, browser: Browser, emulator: Emulator
    ) -> None:
        page = await log_in_fully(browser, emulator)
        assert page.status_code == 400 and "challenge method" in page.text


@pytest.mark.parametrize("fault", ["drop", "error", "stopped"])
async def test_speckle_unreachable_or_failing_gives_a_502_page(
    browser: Browser, emulator: Emulator, fault: str
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    # When
    if fault == "stopped":
        emulator.stop()
    else:
        emulator.inject_fault("/auth/token", fault)
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 502 and "Log in with Speckle" in page.text
    assert ("Could not reach" in page.text) if fault != "error" else ("internal error" in page.text)
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "failed"


async def test_a_token_speckle_does_not_accept_never_reaches_the_panel(
    browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    emulator.inject_fault("/graphql", "error")  # the who-am-I after the exchange
    # When
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 502
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 409


async def test_a_callback_without_code_or_denial_changes_nothing(
    browser: Browser, emulator: Emulator, callback_url: str
) -> None:
    await start_login(browser, emulator)
    # When
    page = await callback(browser, callback_url)
    # Then
    assert page.status_code == 400 and "without a sign-in code" in page.text
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "pending"


async def test_two_racing_callbacks_exchange_once(browser: Browser, emulator: Emulator) -> None:
    app_id, challenge = await start_login(browser, emulator)
    first = await consent(emulator, app_id, challenge)
    second = await consent(emulator, app_id, challenge)  # Speckle issues several codes for one challenge
    emulator.inject_fault("/auth/token", "slow", delay=0.3)  # the first exchange is still on its way
    # When
    pages = await asyncio.gather(callback(browser, first), callback(browser, second))
    # Then
    assert sorted(page.status_code for page in pages) == [200, 409]
    assert emulator.requests_seen("/auth/token") == 1


async def test_a_superseded_login_cannot_finish(browser: Browser, emulator: Emulator) -> None:
    await start_login(browser, emulator, FLOW)
    app_id, challenge = await start_login(browser, emulator, FLOW2)
    # When
    page = await callback(browser, await consent(emulator, app_id, challenge))
    # Then: the newer one finishes, the older reports superseded and hands nothing over
    assert page.status_code == 200
    older = await browser.get(f"speckle-auth/flows/{FLOW}")
    assert older.json()["status"] == "superseded" and "newer login" in older.json()["message"]
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 409


@pytest.mark.parametrize("referer", [None, "https://evil.example/page"], ids=["no-referer", "foreign-referer"])
async def test_another_site_cannot_start_a_login_in_this_browser(
    browser: Browser, emulator: Emulator, referer: str | None
) -> None:
    """Login CSRF / flow fixation: a link on another site opening `login` with the attacker's flow id."""
    await start_login(browser, emulator, FLOW)
    cookie = browser.flow_cookie()
    headers = {"Referer": referer} if referer else {}
    # When: no _xsrf, as a foreign page's link or redirect would send it
    reply = await browser.http.get(f"{BASE}speckle-auth/login", params={"server": emulator.url, "flow": FLOW2},
                                   headers=headers)
    # Then: refused, and the browser's own pending login is untouched
    assert reply.status_code == 403 and "Location" not in reply.headers
    assert browser.flow_cookie() == cookie
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "pending"
    assert (await browser.get(f"speckle-auth/flows/{FLOW2}")).status_code == 404


async def test_a_same_origin_referer_also_passes(browser: Browser, emulator: Emulator) -> None:
    reply = await browser.http.get(f"{BASE}speckle-auth/login", params={"server": emulator.url, "flow": FLOW},
                                   headers={"Referer": f"{browser.origin}{BASE}lab"})
    assert reply.status_code == 302


# --- JupyterHub ---------------------------------------------------------------------------------------------


class TestJupyterHub:
    """The app's one redirect URL is the hub's user-redirect; the hub forwards the query to `<base_url>`."""

    @pytest.fixture
    def callback_url(self) -> str:
        return HUB_CALLBACK

    async def test_the_forwarded_callback_finds_its_cookie(
        self, browser: Browser, emulator: Emulator, ext: SpeckleAuthApp
    ) -> None:
        assert ext.callback_uri() == HUB_CALLBACK
        app_id, challenge = await start_login(browser, emulator)
        redirect = await consent(emulator, app_id, challenge)
        assert redirect.startswith(f"{HUB_CALLBACK}?access_code=")
        # When: the hub sends the browser on to this user's server, query intact
        forwarded = f"{browser.origin}{BASE}speckle-auth/callback?{urlsplit(redirect).query}"
        page = await callback(browser, forwarded)
        # Then
        assert page.status_code == 200 and emulator.credentials["users"][0]["name"] in page.text


class TestHubDefaultRedirect:
    @pytest.fixture
    def extension_config(
        self, extension_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        monkeypatch.setenv("JUPYTERHUB_PUBLIC_HUB_URL", "https://hub.example.org/prefix/hub/")
        monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/prefix/user/ada/")
        return {key: value for key, value in extension_config.items() if key != "redirect_uri"}

    def test_is_the_hubs_user_redirect(self, ext: SpeckleAuthApp) -> None:
        assert ext.callback_uri() == "https://hub.example.org/prefix/hub/user-redirect/speckle-auth/callback"


class TestOwnDefaultRedirect:
    @pytest.fixture
    def extension_config(self, extension_config: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in extension_config.items() if key != "redirect_uri"}

    def test_is_this_servers_callback(self, ext: SpeckleAuthApp, jp_http_port: int) -> None:
        assert ext.callback_uri() == f"http://localhost:{jp_http_port}{BASE}speckle-auth/callback"


# --- the JSON routes ----------------------------------------------------------------------------------------


async def test_flow_routes_validate_ids_and_answer_404_for_unknown_ones(
    browser: Browser, emulator: Emulator
) -> None:
    for bad in ("short", "a" * 65, "a" * 20 + "%20x"):
        assert (await browser.get(f"speckle-auth/flows/{bad}")).json()["error"] == "bad_flow_id"
        reply = await browser.post(f"speckle-auth/flows/{bad}/claim")
        assert reply.status_code == 400 and reply.json()["error"] == "bad_flow_id"
    unknown = await browser.get(f"speckle-auth/flows/{FLOW}")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_flow"
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 404
    # When: a pending flow is claimed
    await start_login(browser, emulator)
    reply = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
    # Then
    assert reply.status_code == 409 and reply.json() == {
        "error": "not_done",
        "message": "This login has no token to hand over (it is pending).",
    }


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (None, 400, "bad_request"),
        ({"server_url": "x"}, 400, "bad_request"),
        ({"server_url": "https://evil.example.org", "refresh_token": "r" * 42}, 400, "unknown_server"),
        ({"server_url": PAT_ONLY, "refresh_token": "r" * 42}, 400, "no_app"),
        ({"server_url": "EMULATOR", "refresh_token": "0" * 42}, 400, "refresh_rejected"),
    ],
)
async def test_refresh_maps_its_errors(
    browser: Browser, emulator: Emulator, body: Any, status: int, error: str
) -> None:
    if body and body.get("server_url") == "EMULATOR":
        body = {**body, "server_url": emulator.url}
    # When
    reply = await browser.post("speckle-auth/refresh", body)
    # Then
    assert reply.status_code == status and reply.json()["error"] == error and reply.json()["message"]


async def test_refresh_with_speckle_down_is_a_502(browser: Browser, emulator: Emulator) -> None:
    emulator.inject_fault("/auth/token", "drop")
    body = {"server_url": emulator.url, "refresh_token": "0" * 42}
    reply = await browser.post("speckle-auth/refresh", body)
    assert reply.status_code == 502 and reply.json()["error"] == "unreachable"


async def test_refresh_refuses_a_body_that_is_not_json_without_logging_it(
    browser: Browser, server_log: Recorder
) -> None:
    TEST_CLIENT.set(True)
    reply = await browser.http.post(
        f"{BASE}speckle-auth/refresh",
        content=b"{not json " + b"f" * 42,
        headers={"X-XSRFToken": browser.xsrf},
    )
    assert reply.status_code == 400 and reply.json()["error"] == "bad_request"
    assert "f" * 42 not in server_log.text()


# --- security -----------------------------------------------------------------------------------------------

PAGE_ROUTES = ["speckle-auth/login", "speckle-auth/callback", "speckle-auth/result"]
JSON_GETS = ["speckle-auth/status", f"speckle-auth/flows/{FLOW}"]
POSTS = [f"speckle-auth/flows/{FLOW}/claim", "speckle-auth/refresh"]


async def test_every_route_refuses_unauthenticated_requests(
    anonymous: Browser, emulator: Emulator, callback_url: str
) -> None:
    for route in PAGE_ROUTES:
        reply = await anonymous.get(route, flow=FLOW, server=emulator.url)
        assert reply.status_code == 302 and reply.headers["Location"].startswith(f"{BASE}login?next="), route
    for route in JSON_GETS:
        assert (await anonymous.get(route)).status_code == 403, route
    await anonymous.http.get(f"{BASE}login")  # an XSRF cookie, so that only the missing login is refused
    for route in POSTS:
        reply = await anonymous.post(route, {})
        assert reply.status_code == 403, route
    # a code arriving at a browser without a Jupyter session is not exchanged before the user logs in
    reply = await anonymous.http.get(f"{callback_url}?access_code={'c' * 42}")
    assert reply.status_code == 302 and emulator.requests_seen("/auth/token") == 0


async def test_posts_refuse_a_missing_xsrf_token_from_a_cookie_session(
    browser: Browser, emulator: Emulator
) -> None:
    await log_in_fully(browser, emulator)
    for route in POSTS:
        # When
        reply = await browser.post(route, {}, xsrf=False)
        # Then
        assert reply.status_code == 403, route
    # the token is still there for the real panel
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 200


def test_allow_unauthenticated_access_false_holds(jp_configurable_serverapp: Any) -> None:
    """As the JupyterLab template's check: with `allow_unauthenticated_access=False` the server starts and
    warns about no endpoint (every verb of ours is `@web.authenticated`)."""
    from jupyter_server.serverapp import JupyterServerAuthWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = jp_configurable_serverapp()
    assert app.allow_unauthenticated_access is False
    assert "speckle_nb_auth" in app.extension_manager.extension_apps
    assert [str(w.message) for w in caught if issubclass(w.category, JupyterServerAuthWarning)] == []


async def test_pages_carry_a_strict_csp_with_the_nonce_of_their_one_script(
    browser: Browser, emulator: Emulator
) -> None:
    page = await log_in_fully(browser, emulator)
    csp = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp)
    assert nonce
    for directive in ("default-src", "frame-ancestors", "base-uri", "form-action"):
        assert f"{directive} 'none'" in csp, directive
    assert re.findall(r"<script[^>]*>", page.text) == [f'<script nonce="{nonce.group(1)}">']
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Cache-Control"] == "no-store"
    # a fresh nonce on every page
    again = await browser.get("speckle-auth/result")
    assert again.headers["Content-Security-Policy"] != csp


async def test_no_secret_in_any_log_line_response_or_page(
    browser: Browser,
    anonymous: Browser,
    emulator: Emulator,
    callback_url: str,
    server_log: Recorder,
) -> None:
    TEST_CLIENT.set(True)
    secrets_seen: list[str] = [emulator.credentials["app_secret"]]
    pages: list[httpx.Response] = []
    # a browser without a Jupyter session: Jupyter redirects to its login with the callback URL in `next`
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    secrets_seen.append(code_of(redirect))
    bounced = await anonymous.http.get(redirect)
    assert bounced.status_code == 302 and "next=" in bounced.headers["Location"]
    # Jupyter's login page, logged with its `next` (the page keeps it: the code must survive the login)
    assert (await anonymous.follow(bounced)).status_code == 200
    # the full login, claim and refresh
    pages.append(await callback(browser, redirect))
    claim = (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).json()
    secrets_seen += [claim["token"], claim["refresh_token"]]
    body = {"server_url": emulator.url, "refresh_token": claim["refresh_token"]}
    fresh = (await browser.post("speckle-auth/refresh", body)).json()
    secrets_seen += [fresh["token"], fresh["refresh_token"]]
    # failures: a replayed callback, a failing exchange, a refused refresh
    pages.append(await callback(browser, redirect))
    app_id, challenge = await start_login(browser, emulator, FLOW2)
    failing = await consent(emulator, app_id, challenge[::-1])
    secrets_seen.append(code_of(failing))
    pages.append(await callback(browser, failing))
    await browser.post("speckle-auth/refresh", {"server_url": emulator.url, "refresh_token": "d" * 42})
    pages.append(await browser.get("speckle-auth/status"))
    # Then
    log = server_log.text()
    assert "speckle-auth/callback" in log and "[secret]" in log  # the lines are there, scrubbed
    for secret in secrets_seen:
        assert secret not in log
        for page in pages:
            assert secret not in page.text and secret not in str(page.headers)
    assert emulator.credentials["session_token"] not in log


async def test_jupyters_log_scrubs_access_code_and_next(jp_serverapp: Any, ext: SpeckleAuthApp) -> None:
    keys = jp_serverapp.web_app.settings["extra_log_scrub_param_keys"]
    assert "access_code" in keys and "next" in keys
    assert "next" in jp_serverapp.extra_log_scrub_param_keys


# --- configuration ------------------------------------------------------------------------------------------


class TestRedirectUriWithQuery:
    @pytest.fixture
    def extension_config(self, extension_config: dict[str, Any]) -> dict[str, Any]:
        return {**extension_config, "redirect_uri": "http://127.0.0.1:8888/speckle-auth/callback?x=1"}

    async def test_is_reported_and_jupyter_keeps_working(
        self, jp_fetch: Any, browser: Browser, emulator: Emulator, server_log: Recorder
    ) -> None:
        # Then: a clear error at start-up
        errors = [r for r in server_log.records.values() if r.levelno >= logging.ERROR]
        assert any("contains '?'" in r.getMessage() and emulator.url in r.getMessage() for r in errors)
        # Jupyter serves, the extension too, and OAuth is off for the app with a page saying why
        assert (await jp_fetch("api", "status")).code == 200
        status = (await browser.get("speckle-auth/status")).json()
        assert status["servers"][0] == {"url": emulator.url, "name": "Emulator", "oauth": False, "app": None}
        reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
        assert reply.status_code == 500 and "contains &#x27;?&#x27;" in reply.text


class TestBrokenServerEntries:
    @pytest.fixture
    def extension_config(self, extension_config: dict[str, Any], emulator: Emulator) -> dict[str, Any]:
        return {
            **extension_config,
            "servers": [
                {"url": emulator.url, "app_id": emulator.credentials["app_id"]},  # no secret
                {"url": "ftp://nope.example.org"},
                {"url": "http://speckle.example.org"},  # plain http, not loopback
                "not a dict",
            ],
            "default_server": "https://unknown.example.org",
            "challenge_method": "md5",
            "flow_lifetime": 0,
        }

    async def test_are_reported_and_the_rest_works(
        self, browser: Browser, emulator: Emulator, server_log: Recorder
    ) -> None:
        records = server_log.records.values()
        errors = "\n".join(r.getMessage() for r in records if r.levelno >= logging.ERROR)
        assert "no app_secret" in errors and "ftp://nope.example.org" in errors and "allow_http" in errors
        assert "not a dict" in errors and "default_server" in errors and "challenge_method" in errors
        assert "flow_lifetime" in errors
        assert (await browser.get("speckle-auth/status")).json()["servers"] == [
            {"url": emulator.url, "name": emulator.url.removeprefix("http://"), "oauth": False,
             "app": None}
        ]
        reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
        assert reply.status_code == 500 and "no app_secret" in reply.text


class TestSecretWrittenInTheConfiguration:
    """Jupyter logs its configuration at DEBUG before any extension loads: the extension says so, and how to
    keep the secret out of it."""

    @pytest.fixture
    def extension_config(self, extension_config: dict[str, Any], emulator: Emulator) -> dict[str, Any]:
        creds = emulator.credentials
        servers = [{"url": emulator.url, "app_id": creds["app_id"], "app_secret": creds["app_secret"]}]
        return {**extension_config, "servers": servers}

    async def test_works_and_warns_when_the_debug_log_is_on(
        self, browser: Browser, emulator: Emulator, server_log: Recorder
    ) -> None:
        warnings_ = [r.getMessage() for r in server_log.records.values() if r.levelno == logging.WARNING]
        assert any("app_secret_env" in w and emulator.url in w for w in warnings_)
        assert not any(emulator.credentials["app_secret"] in w for w in warnings_)
        assert (await log_in_fully(browser, emulator)).status_code == 200


class TestEnvironment:
    @pytest.fixture
    def extension_config(
        self, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, callback_url: str
    ) -> dict[str, Any]:
        creds = emulator.credentials
        monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
        monkeypatch.setenv("SPECKLE_APP_ID", creds["app_id"])
        monkeypatch.setenv("SPECKLE_APP_SECRET", creds["app_secret"])
        monkeypatch.setenv("SPECKLE_REDIRECT_URI", callback_url)
        return {}

    async def test_configures_one_server(
        self, browser: Browser, emulator: Emulator, ext: SpeckleAuthApp, callback_url: str
    ) -> None:
        assert ext.callback_uri() == callback_url
        status = (await browser.get("speckle-auth/status")).json()
        name = emulator.url.removeprefix("http://")
        assert status["servers"] == [{"url": emulator.url, "name": name, "oauth": True, "app": "registered"}]
        assert (await log_in_fully(browser, emulator)).status_code == 200

    async def test_kernels_never_inherit_the_secret(self, browser: Browser, emulator: Emulator) -> None:
        """Kernels start with a copy of this process's environment: once read, the secret is gone from it,
        and the extension, which alone needs it, still logs users in."""
        assert "SPECKLE_APP_SECRET" not in os.environ and os.environ["SPECKLE_APP_ID"]
        assert (await log_in_fully(browser, emulator)).status_code == 200


async def test_start_up_warns_when_the_apps_redirect_url_differs(
    jp_serverapp: Any, ext: SpeckleAuthApp, emulator: Emulator, callback_url: str, server_log: Recorder
) -> None:
    async def check() -> str:
        await ext._start_jupyter_server_extension(jp_serverapp)
        assert ext._redirect_check is not None
        await asyncio.wait_for(ext._redirect_check, 5)
        return "\n".join(r.getMessage() for r in server_log.records.values() if r.levelno == logging.WARNING)

    # registered as configured: no warning
    assert "sends users back to" not in await check()
    # When: the app on Speckle was registered with another URL
    emulator.set_redirect_url("http://elsewhere.example.org/callback")
    # Then
    warned = await check()
    assert "http://elsewhere.example.org/callback" in warned and callback_url in warned
    assert "SPECKLE_REDIRECT_URI" in warned
    assert emulator.credentials["app_secret"] not in warned
    # When: Speckle is down, the check still ends quietly
    emulator.stop()
    warned = await check()
    assert "Could not check" in warned


def test_jupyter_lists_the_extension_as_enabled_and_ok() -> None:
    jupyter = Path(sys.executable).with_name("jupyter")
    result = subprocess.run(
        [str(jupyter), "server", "extension", "list"], capture_output=True, text=True, timeout=60, check=False
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert re.search(r"speckle_nb_auth\s+enabled", output), output
    assert re.search(r"speckle_nb_auth [0-9.]+\S*\s+OK", output), output
