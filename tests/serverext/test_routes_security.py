"""The server extension's routes refuse what they must: unauthenticated requests, POSTs without XSRF, pages
without a strict CSP; and no secret reaches a log line, a response or a page. A real Jupyter server and the
emulator, as in test_routes.py."""

from __future__ import annotations

import re
import warnings
from typing import Any

import httpx
import pytest
from jupyter_server.auth.authorizer import Authorizer
from support.routes import (
    BASE,
    FLOW,
    FLOW2,
    TEST_CLIENT,
    Browser,
    Recorder,
    callback,
    consent,
    log_in_fully,
    start_login,
)
from support.speckle import code_of
from traitlets.config import Config

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp
from speckle_nb_auth.serverext._handlers import AUTH_RESOURCE

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
        refused = await anonymous.get(route)
        assert refused.status_code == 403 and refused.headers["Cache-Control"] == "no-store", route
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


class SpeckleLoginForbidden(Authorizer):
    """A deployment's Authorizer that keeps its users from the Speckle login, and from nothing else."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != AUTH_RESOURCE


class TestADeploymentsAuthorizer:
    """Every route names its `auth_resource`, so an Authorizer can limit the Speckle login alone."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config.ServerApp.authorizer_class = SpeckleLoginForbidden
        return jp_server_config

    async def test_refuses_every_route_and_exchanges_nothing(
        self, browser: Browser, emulator: Emulator, callback_url: str, server_log: Recorder
    ) -> None:
        TEST_CLIENT.set(True)  # the test's own client logs the URLs it asks for: not the server's log
        assert (await browser.http.get(f"{BASE}api/contents")).status_code == 200  # the rest of Jupyter works
        for route in JSON_GETS:
            assert (await browser.get(route)).status_code == 403, route
        for route in [*POSTS, f"speckle-auth/flows/{FLOW}/code", f"speckle-auth/mailbox/{'m' * 24}"]:
            assert (await browser.post(route, {})).status_code == 403, route
        login = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
        assert login.status_code == 403 and "Not allowed" in login.text and browser.flow_cookie() is None
        code = "c" * 42
        page = await browser.http.get(f"{callback_url}?access_code={code}")
        assert page.status_code == 403 and "Not allowed" in page.text
        assert emulator.requests_seen("/auth/token") == 0
        log = server_log.text()
        assert "speckle-auth/callback" in log and code not in log  # the refusal is logged, its code is not


class SpeckleLoginBroken(Authorizer):
    """An Authorizer that fails on the Speckle login (a bug of the deployment's)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == AUTH_RESOURCE:
            raise RuntimeError("the deployment's authorizer broke")
        return True


class TestADeploymentsAuthorizerFailing:
    @pytest.fixture
    def jp_server_config(self, jp_server_config: Config) -> Config:
        jp_server_config.ServerApp.authorizer_class = SpeckleLoginBroken
        return jp_server_config

    async def test_the_callback_ends_in_a_page_and_its_url_is_never_logged(
        self, browser: Browser, emulator: Emulator, callback_url: str, server_log: Recorder
    ) -> None:
        TEST_CLIENT.set(True)
        code = "c" * 42
        page = await browser.http.get(f"{callback_url}?access_code={code}")
        assert page.status_code == 500 and "Login failed" in page.text
        log = server_log.text()
        assert "RuntimeError" in log and code not in log and emulator.requests_seen("/auth/token") == 0
