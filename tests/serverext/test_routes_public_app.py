""""Log in with Speckle" with nothing registered: the server extension signs in through Speckle's public connector
app (`sca`), listens for its redirect on the loopback address the server names, and falls back to paste-back.
A real Jupyter server (pytest-jupyter) and the emulator, whose connector app redirects to a free local port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.another_user import listening_as_nobody
from support.processes import free_loopback_port
from support.routes import (
    FLOW,
    Browser,
    start_login,
    whoami,
)
from support.speckle import consent

from speckle_nb_auth.emulator import Emulator


@pytest.fixture
def connector_port() -> int:
    return free_loopback_port()


@pytest.fixture
def emulator(callback_url: str, connector_port: int) -> Iterator[Emulator]:
    with Emulator(redirect_url=callback_url, connector_redirect_url=f"http://localhost:{connector_port}") as emu:
        yield emu


@pytest.fixture
def extension_config(emulator: Emulator) -> dict[str, Any]:
    return {"servers": [{"url": emulator.url, "name": "Emulator"}]}  # no app: the public one


async def consent_redirect(emulator: Emulator, challenge: str, *, user: int = 0) -> str:
    """The user, signed in on the web, opens the connector app's sign-in page: where Speckle sends them."""
    return await asyncio.to_thread(consent, emulator, challenge, app_id="sca", user=user)


async def land(redirect: str) -> httpx.Response:
    """The browser loads the loopback page (from a thread: the receiver hands the code to the server's loop,
    which is this test's loop)."""
    return await asyncio.to_thread(httpx.get, redirect, trust_env=False, timeout=10)


async def flow_state(browser: Browser, flow: str, *, until: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = (await browser.get(f"speckle-auth/flows/{flow}")).json()
        if state.get("status") == until or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.05)


def port_is_closed(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def test_status_offers_the_public_app(browser: Browser, emulator: Emulator) -> None:
    status = (await browser.get("speckle-auth/status")).json()
    assert status["servers"][0] == {**status["servers"][0], "url": emulator.url, "oauth": True, "app": "public"}


async def test_a_sign_in_through_the_receiver_hands_a_working_token_over(
    browser: Browser, emulator: Emulator, connector_port: int
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    assert app_id == "sca"
    redirect = await consent_redirect(emulator, challenge)
    assert urlsplit(redirect).port == connector_port
    page = await land(redirect)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"
    assert redirect.split("access_code=")[1] not in page.text  # the code is never echoed
    assert (await flow_state(browser, FLOW, until="done"))["status"] == "done"
    assert port_is_closed(connector_port)

    claim = (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).json()
    assert claim["app_id"] == "sca"
    assert (await whoami(emulator, claim["token"]))["name"] == "Ada Lovelace"

    # the public app's refresh goes through the same route, with its public secret
    renewed = await browser.post("speckle-auth/refresh", {"server_url": emulator.url,
                                                         "refresh_token": claim["refresh_token"], "app_id": "sca"})
    assert renewed.status_code == 200 and renewed.json()["token"] != claim["token"]


async def test_a_code_made_for_another_login_signs_nobody_in(
    browser: Browser, emulator: Emulator, connector_port: int
) -> None:
    await start_login(browser, emulator)
    stranger = await consent_redirect(emulator, "another-login-" + "x" * 50)  # not this login's challenge
    await land(stranger)
    state = await flow_state(browser, FLOW, until="failed")
    assert state["status"] == "failed" and "challenge" in state["message"].lower()
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 409
    assert port_is_closed(connector_port)


async def test_denied_ends_the_login_and_closes_the_port(
    browser: Browser, emulator: Emulator, connector_port: int
) -> None:
    await start_login(browser, emulator)
    await land(f"http://localhost:{connector_port}/?denied=true")
    assert (await flow_state(browser, FLOW, until="denied"))["status"] == "denied"
    assert port_is_closed(connector_port)


async def test_a_busy_port_asks_for_the_address_and_a_pasted_one_signs_in(
    browser: Browser, emulator: Emulator, connector_port: int
) -> None:
    with socket.socket() as squatter:  # Speckle's desktop service, or another login, holds the port
        squatter.bind(("127.0.0.1", connector_port))
        squatter.listen()
        _, challenge = await start_login(browser, emulator)
        assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["paste"] is True
        redirect = await consent_redirect(emulator, challenge)

        refused = await browser.post(f"speckle-auth/flows/{FLOW}/code", {"pasted": "http://localhost:1/nothing"})
        assert refused.status_code == 400 and "localhost:1/nothing" not in refused.text  # never echoed
        pasted = await browser.post(f"speckle-auth/flows/{FLOW}/code", {"pasted": redirect})
        assert pasted.status_code == 200, pasted.text
    claim = (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).json()
    assert (await whoami(emulator, claim["token"]))["name"] == "Ada Lovelace"
    again = await browser.post(f"speckle-auth/flows/{FLOW}/code", {"pasted": redirect})
    assert again.status_code == 409  # single use


async def test_another_users_listener_on_the_port_ends_the_login_before_speckles_page(
    browser: Browser, emulator: Emulator, connector_port: int
) -> None:
    with listening_as_nobody(connector_port):
        reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
    assert reply.status_code == 409 and "Location" not in reply.headers  # never sent on to Speckle
    assert f"Port {connector_port} of this machine" in reply.text and "another user of this machine" in reply.text
    assert "personal access token" in reply.text
    state = (await browser.get(f"speckle-auth/flows/{FLOW}")).json()
    assert state["status"] == "failed" and "another user" in state["message"], state  # the panel says it too


async def test_cancel_closes_the_port_at_once_and_ends_the_login(
    browser: Browser, emulator: Emulator, connector_port: int
) -> None:
    await start_login(browser, emulator)
    assert not port_is_closed(connector_port)
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/cancel", None, xsrf=False)).status_code == 403
    assert not port_is_closed(connector_port)  # another site cannot cancel it
    reply = await browser.post(f"speckle-auth/flows/{FLOW}/cancel", None)
    assert reply.status_code == 200 and reply.json()["status"] == "failed"
    assert port_is_closed(connector_port)
    assert "cancelled" in (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["message"]


async def test_any_server_signs_in_with_the_public_app_and_a_typo_is_named(
    browser: Browser, emulator: Emulator
) -> None:
    """The README says "Log in with Speckle" works on any server: one set up nowhere got "not set up"."""
    assert (await browser.get("speckle-auth/status")).json()["any_server"] is True
    with Emulator(connector_redirect_url=f"http://localhost:{free_loopback_port()}") as elsewhere:
        reply = await browser.get("speckle-auth/login", server=elsewhere.url.replace("127.0.0.1", "localhost"),
                                  flow=FLOW)
        assert reply.status_code == 302, reply.text
        assert reply.headers["Location"].startswith(elsewhere.url.replace("127.0.0.1", "localhost")
                                                    + "/authn/verify/sca/")
    nothing = f"http://127.0.0.1:{free_loopback_port()}"
    typo = await browser.get("speckle-auth/login", server=nothing, flow="f" * 20)
    assert typo.status_code == 502
    assert f"Nothing answers at {nothing}: is the address right (a typo)?" in typo.text
    assert emulator.url in typo.text  # the servers set up here are offered


async def test_paste_needs_xsrf(browser: Browser, emulator: Emulator) -> None:
    await start_login(browser, emulator)
    reply = await browser.post(f"speckle-auth/flows/{FLOW}/code", {"pasted": "x"}, xsrf=False)
    assert reply.status_code == 403


class TestPublicAppOff:
    @pytest.fixture
    def extension_config(self, emulator: Emulator) -> dict[str, Any]:
        return {"servers": [{"url": emulator.url, "name": "Emulator"}], "public_app": False}

    async def test_a_server_without_an_app_takes_tokens_only(
        self, browser: Browser, emulator: Emulator
    ) -> None:
        status = (await browser.get("speckle-auth/status")).json()
        assert status["servers"] == [{"url": emulator.url, "name": "Emulator", "oauth": False, "app": None}]
        assert status["any_server"] is False
        reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
        assert reply.status_code == 400 and "personal access token" in reply.text
