"""Abuse: a flood of login starts, requests from another origin, a callback replayed from the browser's history,
and a code meant for another browser's login. `-s` shows the figure line."""


from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.routes import (
    BASE,
    FLOW,
    FLOW2,
    Browser,
    callback,
    consent,
    log_in_fully,
    start_login,
    whoami,
)

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp

MAX_FLOWS = 8
EVIL = "http://evil.example"
figures = {"requests": 0, "flows started": 0, "flows dropped": 0, "tokens delivered": 0, "delivered twice": 0}
delivered: dict[str, int] = {}  # token -> times handed over


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    figures["delivered twice"] = sum(1 for times in delivered.values() if times > 1)
    print(
        f"\nrequests: {figures['requests']}, flows started: {figures['flows started']}, "
        f"flows dropped: {figures['flows dropped']}, tokens delivered: {len(delivered)}, "
        f"tokens delivered more than once: {figures['delivered twice']}"
    )


@pytest.fixture(autouse=True)
def _count(request: pytest.FixtureRequest) -> None:
    """Count every request the test's browsers send, and every token a claim hands over."""

    async def on_request(sent: httpx.Request) -> None:
        figures["requests"] += 1
        if sent.url.path.endswith("/speckle-auth/login") and sent.url.params.get("flow"):
            figures["flows started"] += 1

    async def on_response(reply: httpx.Response) -> None:
        if reply.request.url.path.endswith("/claim") and reply.status_code == 200:
            await reply.aread()
            token = reply.json()["token"]
            delivered[token] = delivered.get(token, 0) + 1

    for name in ("browser", "other_browser"):
        if name in request.fixturenames:
            who: Browser = request.getfixturevalue(name)
            who.http.event_hooks = {"request": [on_request], "response": [on_response]}


def assert_delivered_once() -> None:
    twice = [token for token, times in delivered.items() if times > 1]
    assert not twice, "a token was handed over more than once"


# --- a flood of login starts --------------------------------------------------------------------------------


class TestFlood:
    @pytest.fixture
    def extension_config(self, extension_config: dict[str, Any]) -> dict[str, Any]:  # type: ignore[override]
        return {**extension_config, "max_flows": MAX_FLOWS}

    async def test_the_store_stays_bounded_drops_the_oldest_and_the_server_answers(
        self, browser: Browser, other_browser: Browser, emulator: Emulator, ext: SpeckleAuthApp
    ) -> None:
        store = ext.logins.store
        batches = [[f"flood-{b}-{i:012d}" for i in range(MAX_FLOWS)] for b in range(3)]
        sizes: list[int] = []
        latencies: list[float] = []

        async def start(flow: str) -> int:
            reply = await other_browser.get("speckle-auth/login", server=emulator.url, flow=flow)
            sizes.append(len(store))
            return reply.status_code

        async def probe() -> None:
            began = time.monotonic()
            reply = await browser.get("api/status")
            latencies.append(time.monotonic() - began)
            assert reply.status_code == 200 and "started" in reply.json()

        # When: 3 x max_flows logins start, a batch at a time, while Jupyter is asked for its status
        for batch in batches:
            statuses = await asyncio.gather(*(start(flow) for flow in batch), probe(), probe())
            assert statuses[:MAX_FLOWS] == [302] * MAX_FLOWS
        # and the user starts one more, the newest, from their own browser
        app_id, challenge = await start_login(browser, emulator, FLOW)
        sizes.append(len(store))
        # Then: bounded at every step
        assert max(sizes) <= MAX_FLOWS and len(store) == MAX_FLOWS
        # the two oldest batches are gone; of the newest batch all but one (the oldest of it) are known
        known = {}
        for flow in [f for batch in batches for f in batch]:
            reply = await browser.get(f"speckle-auth/flows/{flow}")
            assert reply.status_code in (200, 404)
            known[flow] = reply.status_code == 200
        dropped = [flow for flow, is_known in known.items() if not is_known]
        figures["flows dropped"] += len(dropped)
        assert set(batches[0]) | set(batches[1]) <= set(dropped)
        assert sum(known[f] for f in batches[2]) == MAX_FLOWS - 1
        # the server stayed responsive throughout
        assert len(latencies) == 6 and max(latencies) < 2.0, latencies
        # When: the user's newest login goes through
        page = await callback(browser, await consent(emulator, app_id, challenge))
        # Then
        assert page.status_code == 200 and "Ada Lovelace" in page.text
        claim = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
        assert claim.status_code == 200
        assert (await whoami(emulator, claim.json()["token"]))["name"] == "Ada Lovelace"
        assert len(store) <= MAX_FLOWS
        assert_delivered_once()

    async def test_a_done_login_waiting_for_its_claim_is_dropped_whole_not_half(
        self, browser: Browser, other_browser: Browser, emulator: Emulator, ext: SpeckleAuthApp
    ) -> None:
        """If a flood pushes out a finished login before the panel claimed it, the claim finds nothing: the
        token is gone with its flow, never handed to anyone else."""
        assert (await log_in_fully(browser, emulator)).status_code == 200
        for i in range(MAX_FLOWS):
            await other_browser.get("speckle-auth/login", server=emulator.url, flow=f"push-out-{i:012d}")
        claim = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
        assert claim.status_code == 404 and "token" not in claim.json()
        figures["flows dropped"] += 1
        assert all(flow.tokens is None for flow in (ext.logins.store.get(f"push-out-{i:012d}")
                                                    for i in range(MAX_FLOWS)) if flow is not None)


# --- requests from another origin ----------------------------------------------------------------------------


async def test_cross_origin_posts_with_the_session_cookie_are_refused(
    browser: Browser, emulator: Emulator
) -> None:
    assert (await log_in_fully(browser, emulator)).status_code == 200  # a token waits to be claimed
    refresh_token = emulator.credentials["session_token"]  # any secret-looking body; never echoed
    exchanges = emulator.requests_seen("/auth/token")
    posts = [
        ("claim, no XSRF", f"speckle-auth/flows/{FLOW}/claim", {}, None),
        ("claim, form post", f"speckle-auth/flows/{FLOW}/claim", {"Content-Type": "application/x-www-form-urlencoded"},
         b"x=1"),
        ("refresh, no XSRF", "speckle-auth/refresh", {"Content-Type": "application/json"},
         b'{"server_url": "%s", "refresh_token": "%s"}' % (emulator.url.encode(), refresh_token.encode())),
        ("claim, XSRF copied", f"speckle-auth/flows/{FLOW}/claim", {"X-XSRFToken": browser.xsrf}, None),
    ]
    refused: list[str] = []
    for origin in (EVIL, "null"):
        for what, route, headers, body in posts:
            # When: a page on another origin makes the user's browser post, with the user's cookies
            reply = await browser.http.post(f"{BASE}{route}", headers={"Origin": origin, **headers}, content=body)
            # Then: refused (Jupyter answers a foreign Origin with 404, a missing XSRF token with 403)
            assert reply.status_code in (403, 404), (origin, what, reply.status_code, reply.text)
            refused.append(reply.text + str(reply.headers))
            assert reply.headers.get("Access-Control-Allow-Origin") in (None, ""), (origin, what)
            assert refresh_token not in reply.text
    # nothing was exchanged, refreshed or claimed: the real panel still gets its token, once
    assert emulator.requests_seen("/auth/token") == exchanges
    claim = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
    assert claim.status_code == 200 and claim.json()["token"]
    for text in refused:
        assert claim.json()["token"] not in text and claim.json()["refresh_token"] not in text
    assert_delivered_once()


async def test_a_foreign_origin_is_granted_no_cors_access(browser: Browser, emulator: Emulator) -> None:
    await start_login(browser, emulator)
    for route in (f"speckle-auth/flows/{FLOW}", "speckle-auth/status"):
        for method in ("GET", "OPTIONS"):
            reply = await browser.http.request(
                method, f"{BASE}{route}",
                headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
            )
            allowed = reply.headers.get("Access-Control-Allow-Origin")
            assert allowed not in (EVIL, "*"), (route, method, allowed)
            assert reply.headers.get("Access-Control-Allow-Credentials") != "true" or allowed is None
            if method == "GET":
                assert reply.status_code in (403, 404), (route, reply.status_code)  # Jupyter: foreign Origin


# --- a callback replayed from the browser's history -----------------------------------------------------------


async def test_a_replayed_callback_exchanges_nothing_and_delivers_nothing_again(
    browser: Browser, emulator: Emulator, ext: SpeckleAuthApp
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    first = await callback(browser, redirect)
    assert first.status_code == 200
    exchanges = emulator.requests_seen("/auth/token")
    # When: the callback URL is fetched again from history, before the panel claimed the token...
    before_claim = await callback(browser, redirect)
    claim = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
    token = claim.json()["token"]
    # ...and after it
    after_claim = await callback(browser, redirect)
    # Then
    for page in (before_claim, after_claim):
        assert page.status_code == 409 and "Login already completed" in page.text
        assert token not in page.text and claim.json()["refresh_token"] not in page.text
    assert emulator.requests_seen("/auth/token") == exchanges
    assert claim.status_code == 200
    again = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
    assert again.status_code == 404 and token not in again.text
    reloaded = await browser.get("speckle-auth/result")  # the clean result URL, also in history
    assert reloaded.status_code == 200 and "Ada Lovelace" in reloaded.text and token not in reloaded.text
    assert ext.logins.store.get(FLOW).tokens is None  # type: ignore[union-attr]
    assert_delivered_once()


async def test_a_code_meant_for_another_browsers_login_is_refused(
    browser: Browser, other_browser: Browser, emulator: Emulator
) -> None:
    # the user's browser starts a login; its code ends up in another browser (login CSRF, a shared link)
    app_id, challenge = await start_login(browser, emulator, FLOW)
    stolen = await consent(emulator, app_id, challenge)
    # When: the other browser has a login of its own waiting
    await start_login(other_browser, emulator, FLOW2)
    page = await callback(other_browser, stolen)
    # Then: Speckle refuses the code for that login's challenge; nothing is handed over there
    assert page.status_code == 400 and "challenge did not match" in page.text
    status = (await other_browser.get(f"speckle-auth/flows/{FLOW2}")).json()
    assert status["status"] == "failed"
    claim = await other_browser.post(f"speckle-auth/flows/{FLOW2}/claim")
    assert claim.status_code == 409 and "token" not in claim.json()
    # When: a browser with no login waiting gets the code: nothing is even exchanged
    exchanges = emulator.requests_seen("/auth/token")
    jar = other_browser.http.cookies.jar
    for found in [c for c in jar if c.name.startswith("speckle-auth-flow-")]:
        jar.clear(found.domain, found.path, found.name)
    page = await callback(other_browser, stolen)
    assert page.status_code == 400 and "No login in progress" in page.text
    assert emulator.requests_seen("/auth/token") == exchanges
    # the user retries in their own browser and gets in
    assert (await log_in_fully(browser, emulator, "retry-flow-000000000")).status_code == 200
    assert (await browser.post("speckle-auth/flows/retry-flow-000000000/claim")).status_code == 200
    assert_delivered_once()

