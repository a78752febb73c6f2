"""Speckle's public connector app against the emulator: its facts come from the server, a whole sign-in goes
through a real loopback receiver, and a code meant for another login signs nobody in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from support.processes import free_loopback_port
from support.speckle import access_code, consent, follow

from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth import _public_app as public_app
from speckle_nb_auth._errors import AccessCodeRejected
from speckle_nb_auth._public_app import (
    PUBLIC_APP_ID,
    NoPublicApp,
    aconnector_app,
    apublic_login,
    connector_app,
    public_login,
)
from speckle_nb_auth._receiver import LoopbackReceiver, Received
from speckle_nb_auth._transport import call
from speckle_nb_auth.emulator import Emulator


@pytest.fixture
def connector_emulator() -> Iterator[Emulator]:
    with Emulator(connector_redirect_url=f"http://localhost:{free_loopback_port()}") as emu:
        yield emu


def whoami(emu: Emulator, token: str) -> str:
    with httpx.Client() as http:
        return call(http, protocol.whoami(emu.url, token)).user.email or ""


def test_the_connector_app_is_asked_of_the_server(connector_emulator: Emulator) -> None:
    app = connector_app(connector_emulator.url)
    assert app.redirect_url == connector_emulator.credentials["connector_redirect_url"]
    assert app.name == "Speckle Connector"
    assert set(app.scopes) == {"streams:read", "streams:write", "profile:read", "profile:email", "users:read",
                               "users:invite"}
    assert app == asyncio.run(_async_app(connector_emulator.url))


async def _async_app(url: str) -> object:
    async with httpx.AsyncClient() as http:
        return await aconnector_app(url, http=http)


def test_scopes_the_app_lacks_are_named_before_signing_in(connector_emulator: Emulator) -> None:
    app = connector_app(connector_emulator.url)
    assert app.lacks(["streams:read", "tokens:read", "apps:read", "tokens:read"]) == ("tokens:read", "apps:read")
    message = app.lacking_message(["streams:read", "tokens:read"])
    assert message is not None and "tokens:read" in message and "personal access token" in message
    assert app.lacking_message(["streams:read"]) is None


def test_a_whole_sign_in_through_the_loopback_receiver(connector_emulator: Emulator) -> None:
    login = public_login(connector_emulator.url)
    assert login.authorize_url == f"{connector_emulator.url}/authn/verify/{PUBLIC_APP_ID}/{login.challenge}"
    with LoopbackReceiver(login.app.redirect_url) as receiver:
        page = follow(connector_emulator, login.authorize_url, user=1)
        received = receiver.wait(10)
    assert page.status_code == 200
    assert received is not None and received.kind == "code" and received.code
    pair = login.exchange(received.code)
    assert pair.refresh_token
    assert whoami(connector_emulator, pair.token) == connector_emulator.credentials["users"][1]["email"]
    for secret in (pair.token, pair.refresh_token, login.challenge, received.code):
        assert secret not in repr(login) + repr(pair) + repr(received)


def test_the_async_login_signs_in_too(connector_emulator: Emulator) -> None:
    async def run() -> protocol.TokenPair:
        async with httpx.AsyncClient() as http:
            login = await apublic_login(connector_emulator.url, http=http)
            with LoopbackReceiver(login.app.redirect_url) as receiver:
                await asyncio.to_thread(follow, connector_emulator, login.authorize_url)
                received = await asyncio.to_thread(receiver.wait, 10)
            assert received is not None and received.code
            return await login.aexchange(received.code, http=http)

    pair = asyncio.run(run())
    assert whoami(connector_emulator, pair.token) == connector_emulator.credentials["users"][0]["email"]


def test_a_code_made_for_another_challenge_signs_nobody_in(connector_emulator: Emulator) -> None:
    login = public_login(connector_emulator.url)
    foreign = access_code(connector_emulator, protocol.challenge_for(protocol.make_verifier()), app_id="sca")
    with LoopbackReceiver(login.app.redirect_url) as receiver:
        httpx.get(f"{login.app.redirect_url}?access_code={foreign}", trust_env=False)
        received = receiver.wait(10)
    assert received == Received("code", foreign)
    with pytest.raises(AccessCodeRejected) as caught:
        login.exchange(foreign)
    assert caught.value.code == "challenge_mismatch"


def test_a_code_of_another_pending_login_signs_nobody_in(connector_emulator: Emulator) -> None:
    mine, theirs = public_login(connector_emulator.url), public_login(connector_emulator.url)
    with LoopbackReceiver(mine.app.redirect_url) as receiver:
        httpx.get(consent(connector_emulator, authorize_url=theirs.authorize_url), trust_env=False)
        received = receiver.wait(10)
    assert received is not None and received.code
    with pytest.raises(AccessCodeRejected):
        mine.exchange(received.code)
    with pytest.raises(AccessCodeRejected) as caught:  # the wrong challenge burnt it for its own login too
        theirs.exchange(received.code)
    assert caught.value.code == "access_code_used"


def test_a_server_without_the_public_app_says_what_to_do_instead() -> None:
    # Every Speckle server seeds `sca` (so does the emulator): this is the answer of one that did not.
    for answer in (None, {"id": "sca", "name": "x", "redirectUrl": None, "scopes": []}):
        with pytest.raises(NoPublicApp) as caught:
            public_app._parse("https://speckle.example.org", answer)
        assert "personal access token" in caught.value.message
        assert "https://speckle.example.org/settings" in caught.value.message
