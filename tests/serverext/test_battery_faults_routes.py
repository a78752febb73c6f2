"""Faults at every stage of the server extension's work, injected by the emulator (slow, 5xx, connection
dropped): the code exchange, the who-am-I after it, the refresh route, and a refresh made by the kernel's Client
through the panel's browser half and the extension's refresh route. Each ends in a clear message, no
half-signed-in state, an earlier good sign-in kept, and a retry that works. `-s` shows the figure line.

The kernel half of this battery (the panel's validation, the Client's own refresh) is
tests/kernel/test_battery_faults_panel.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.faults import EMULATOR_ROUTES, KINDS, SAYS, Figures, tokens
from support.panel import WHO, FakeShell, assert_no_secret, deliver, hand_over, kill_token
from support.routes import Browser, callback, consent, log_in_fully, start_login
from support.speckle import oauth_pair

from speckle_nb_auth import RefreshRejected
from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp

# a test here drives a panel: it starts and ends with an empty sign-in registry (support/fixtures_panel.py)
pytestmark = pytest.mark.usefixtures("_fresh_registry")

EXT_TIMEOUT = 1.0  # seconds: the extension's Speckle timeout in these tests (15 s in production)

FLOW0 = "good-flow-0000000000"
FLOW1 = "bad-flow-11111111111"
FLOW2 = "retry-flow-222222222"

figures = Figures()
inject, kept = figures.inject, figures.kept


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    print(figures.line())


@pytest.fixture(autouse=True)
def _count_requests(request: pytest.FixtureRequest, emulator: Emulator) -> Iterator[None]:
    """Every request the test's browser sent to Jupyter, and every request that reached Speckle."""
    if "browser" in request.fixturenames:
        jupyter: Browser = request.getfixturevalue("browser")

        async def count(_: httpx.Request) -> None:
            figures["requests"] += 1

        jupyter.http.event_hooks = {"request": [count], "response": []}
    yield
    figures["requests"] += sum(emulator.requests_seen(route) for route in EMULATOR_ROUTES)


async def token_works(emu: Emulator, token: str) -> bool:
    async with httpx.AsyncClient(timeout=5) as speckle:
        reply = await speckle.post(
            f"{emu.url}/graphql", json={"query": WHO}, headers={"Authorization": f"Bearer {token}"}
        )
    return reply.status_code == 200 and bool((reply.json().get("data") or {}).get("activeUser"))


def no_token_in(reply: httpx.Response, *tokens: str | None) -> None:
    for token in tokens:
        if token:
            assert token not in reply.text and token[-8:] not in reply.text


# --- the server extension -----------------------------------------------------------------------------------


class TestServerExtension:
    @pytest.fixture
    def extension_config(  # type: ignore[override]
        self, extension_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        # read when the extension makes its httpx client, at start-up
        monkeypatch.setattr("speckle_nb_auth.serverext._app.DEFAULT_TIMEOUT", httpx.Timeout(EXT_TIMEOUT))
        return extension_config

    @staticmethod
    async def quiet(ext: SpeckleAuthApp) -> None:
        """The start-up check of the app's redirect URL queries /graphql: let it finish before faults."""
        task = getattr(ext, "_redirect_check", None)
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), 5)

    @staticmethod
    async def good_sign_in(browser: Browser, emulator: Emulator) -> dict[str, str]:
        page = await log_in_fully(browser, emulator, FLOW0)
        assert page.status_code == 200
        claim = await browser.post(f"speckle-auth/flows/{FLOW0}/claim")
        assert claim.status_code == 200
        return claim.json()

    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("stage", ["/auth/token", "/graphql"], ids=["exchange", "whoami"])
    async def test_a_fault_at_the_callback_fails_the_flow_and_a_new_login_works(
        self, browser: Browser, emulator: Emulator, ext: SpeckleAuthApp, stage: str, kind: str
    ) -> None:
        await self.quiet(ext)
        good = await self.good_sign_in(browser, emulator)
        app_id, challenge = await start_login(browser, emulator, FLOW1)
        redirect = await consent(emulator, app_id, challenge)
        exchanges = emulator.requests_seen("/auth/token")
        tokens_before = set(emulator.issued_secrets())
        # When
        inject(emulator, stage, kind)
        page = await callback(browser, redirect)
        # Then: a page that says what happened and how to retry
        assert page.status_code == 502, page.text
        # a token issued before the who-am-I failed was revoked again: nobody would ever hold it
        assert set(emulator.issued_secrets()) <= tokens_before
        assert SAYS[kind] in page.text and "Log in with Speckle" in page.text
        assert emulator.requests_seen("/auth/token") == exchanges + 1
        # the flow says the same, and ended: nothing half-done, nothing to claim
        status = await browser.get(f"speckle-auth/flows/{FLOW1}")
        assert status.status_code == 200 and status.json()["status"] == "failed"
        assert SAYS[kind] in status.json()["message"]
        flow = ext.logins.store.get(FLOW1)
        assert flow is not None and flow.status == "failed" and flow.tokens is None
        claim = await browser.post(f"speckle-auth/flows/{FLOW1}/claim")
        assert claim.status_code == 409 and claim.json()["error"] == "not_done"
        assert set(claim.json()) == {"error", "message"}
        # the same callback again changes nothing
        again = await callback(browser, redirect)
        assert again.status_code == 409 and emulator.requests_seen("/auth/token") == exchanges + 1
        # the earlier sign-in is untouched and not handed over again
        kept(await token_works(emulator, good["token"]))
        second = await browser.post(f"speckle-auth/flows/{FLOW0}/claim")
        assert second.status_code == 404
        no_token_in(second, good["token"], good["refresh_token"])
        # When: the user retries
        retry = await log_in_fully(browser, emulator, FLOW2)
        # Then
        assert retry.status_code == 200 and "Ada Lovelace" in retry.text
        pair = (await browser.post(f"speckle-auth/flows/{FLOW2}/claim")).json()
        assert pair["token"] != good["token"] and await token_works(emulator, pair["token"])

    @pytest.mark.parametrize("kind", KINDS)
    async def test_a_fault_during_refresh_is_a_502_with_a_message_and_a_retry_works(
        self, browser: Browser, emulator: Emulator, kind: str
    ) -> None:
        pair = oauth_pair(emulator)
        body = {"server_url": emulator.url, "refresh_token": pair.refresh_token}
        # When
        inject(emulator, "/auth/token", kind)
        reply = await browser.post("speckle-auth/refresh", body)
        # Then
        assert reply.status_code == 502
        answer = reply.json()
        assert set(answer) == {"error", "message"}
        assert answer["error"] == ("server_error" if kind == "error" else "unreachable")
        assert SAYS[kind] in answer["message"] and emulator.url in answer["message"]
        no_token_in(reply, pair.token, pair.refresh_token, emulator.credentials["app_secret"])
        kept(await token_works(emulator, pair.token))
        # When: the panel asks again
        again = await browser.post("speckle-auth/refresh", body)
        # Then
        assert again.status_code == 200, again.text
        fresh = again.json()
        assert fresh["token"] != pair.token and await token_works(emulator, fresh["token"])

    async def test_a_refresh_dropped_behind_the_panel_keeps_the_client_and_the_next_call_refreshes(
        self,
        browser: Browser,
        emulator: Emulator,
        panels: Any,
        shell: FakeShell,
        jp_asyncio_loop: asyncio.AbstractEventLoop,
    ) -> None:
        """The whole chain: the kernel's Client -> the panel's browser half -> the extension's refresh route
        -> Speckle, which drops the connection; the browser half answers as panel.js does."""
        loop = jp_asyncio_loop
        panel = panels()
        asked: list[dict[str, Any]] = []

        async def browser_half(request: dict[str, Any]) -> None:
            asked.append(request)
            reply = {"type": "refresh_failed", "id": request["id"], "message": ""}
            answer = await browser.post(
                "speckle-auth/refresh",
                {"server_url": request["server_url"], "refresh_token": request["refresh_token"]},
            )
            data = answer.json()
            if answer.status_code == 200 and data.get("token"):
                reply = {"type": "refreshed", "id": request["id"], "token": data["token"],
                         "refresh_token": data.get("refresh_token")}
            else:
                reply["message"] = data.get("message") or f"Renewing the sign-in failed (HTTP {answer.status_code})"
            deliver(panel, reply)

        panel.send = lambda content, buffers=None: asyncio.run_coroutine_threadsafe(  # type: ignore[method-assign]
            browser_half(content), loop
        )
        deliver(panel, {"type": "ready"})
        token, refresh_token = tokens(emulator)
        hand_over(panel, emulator.url, token, refresh_token)
        speckle = shell.user_ns["speckle"]
        old = speckle.token_pair
        kill_token(emulator, token)
        # When: the token needs renewing, and Speckle drops the refresh
        inject(emulator, "/auth/token", "drop")
        with pytest.raises(RefreshRejected) as caught:
            await loop.run_in_executor(None, speckle.graphql, WHO)
        # Then: a clear message, in the error and the panel; the client and the sign-in stay as they were
        assert SAYS["drop"] in caught.value.message and "Could not reach" in caught.value.message
        assert SAYS["drop"] in panel.error
        assert speckle.token_pair == old
        kept(shell.user_ns["speckle"] is speckle and panel.status == "signed_in")
        assert_no_secret(panel, token, refresh_token)
        # When: the next call, the fault gone
        name = (await loop.run_in_executor(None, speckle.graphql, WHO))["activeUser"]["name"]
        # Then: it refreshes then, through the same chain
        assert name == "Ada Lovelace" and len(asked) == 2
        assert speckle.token_pair.token != token and await token_works(emulator, speckle.token_pair.token)
        assert_no_secret(panel, speckle.token_pair.token, speckle.token_pair.refresh_token)
