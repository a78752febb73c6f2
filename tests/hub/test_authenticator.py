"""SpeckleAuthenticator against the emulator, through oauthenticator's own `authenticate` and `check_allowed` and
its own `refresh_user` (the fast suite's check of the oauthenticator versions allowed; tests/hub/real/ runs it in a
real JupyterHub), and what `configure(c, ..., login=True)` puts into a hub's configuration."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from oauthenticator.oauth2 import _serialize_state
from support.speckle import access_code, code_of, consent
from tornado import web
from traitlets.config import Config

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.hub import SpeckleAuthenticator, configure

CHALLENGE = "a-challenge-of-this-login-only-0123456789"
SECRET_ENV = "SNB_TEST_APP_SECRET"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(redirect_url="http://127.0.0.1:8000/hub/oauth_callback") as emulator:
        yield emulator


@pytest.fixture
def authenticator(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> SpeckleAuthenticator:
    monkeypatch.setenv(SECRET_ENV, emu.credentials["app_secret"])
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)
    config = Config()
    configure(config, server=emu.url, app_id=emu.credentials["app_id"], app_secret_env=SECRET_ENV,
              public_url="http://127.0.0.1:8000", login=True)
    return SpeckleAuthenticator(config=config)


class Callback:
    """What oauthenticator's hooks read of the callback request: its arguments and the state cookie."""

    def __init__(self, arguments: dict[str, str], challenge: str = CHALLENGE) -> None:
        self.arguments = arguments
        self.cookie = _serialize_state({"state_id": "x", "next_url": None, "challenge": challenge})

    def get_argument(self, name: str, default: Any = None) -> Any:
        return self.arguments.get(name, default)

    def get_state_cookie(self) -> str:
        return self.cookie


class HubUserState:
    """A hub user's stored auth_state, as JupyterHub's User keeps it (encrypted, there)."""

    def __init__(self, name: str, state: dict[str, Any]) -> None:
        self.name, self.state = name, state

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self.state

    async def save_auth_state(self, state: dict[str, Any] | None) -> None:
        self.state = state  # type: ignore[assignment]


def accepts(emu: Emulator, token: str) -> bool:
    reply = httpx.post(f"{emu.url}/graphql", json={"query": "{ activeUser { id } }"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return bool((reply.json().get("data") or {}).get("activeUser"))


def test_configure_login_sets_up_the_authenticator_and_gives_servers_no_secret(emu: Emulator) -> None:
    c = Config()
    c.Spawner.environment = {"KEEP": "me"}
    redirect = configure(c, server=emu.url, app_id="app1", app_secret_env=SECRET_ENV,
                         public_url="https://hub.example.org/", login=True)
    assert redirect == "https://hub.example.org/hub/oauth_callback"
    assert c.JupyterHub.authenticator_class == "speckle_nb_auth.hub.SpeckleAuthenticator"
    assert c.SpeckleAuthenticator.oauth_callback_url == redirect and c.SpeckleAuthenticator.client_id == "app1"
    assert c.SpeckleAuthenticator.client_secret_env == SECRET_ENV and "client_secret" not in c.SpeckleAuthenticator
    roles = {role["name"]: role["scopes"] for role in c.JupyterHub.load_roles}
    assert "admin:auth_state!user" in roles["user"] and "admin:auth_state!user" in roles["server"]
    assert c.Spawner.environment == {"KEEP": "me", "SPECKLE_SERVER": emu.url, "SPECKLE_HUB_LOGIN": "1"}
    assert not c.JupyterHub.get("services")  # the app's one redirect URL is the hub's: no login service


def test_a_login_refresh_and_logout_through_oauthenticators_own_methods(
    emu: Emulator, authenticator: SpeckleAuthenticator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    code = access_code(emu, CHALLENGE)
    seen: list[str] = [code, emu.credentials["app_secret"]]

    async def go() -> None:  # one event loop, as in JupyterHub: the authenticator's HTTP client lives on it
        model = await authenticator.authenticate(Callback({"access_code": code}))
        assert model["name"] == "ada@example.com"
        state = model["auth_state"]
        seen.extend([state["access_token"], state["refresh_token"]])
        assert accepts(emu, state["access_token"]) and state["refresh_token"]
        assert state["speckle_server"] == emu.url and state["speckle_user"]["name"] == "Ada Lovelace"
        user = HubUserState(model["name"], state)

        # while the token works, a refresh changes nothing; once Speckle refuses it, the refresh token renews it
        assert await authenticator.refresh_user(user) is True
        httpx.post(f"{emu.url}/auth/logout", json={"token": state["access_token"]}, timeout=10)
        renewed = (await authenticator.refresh_user(user))["auth_state"]
        seen.append(renewed["access_token"])
        assert renewed["access_token"] != state["access_token"] and accepts(emu, renewed["access_token"])
        assert user.state["access_token"] == renewed["access_token"]  # saved before the next request reads it

        # two requests that find the token refused at once renew it once (a refresh token is good once)
        httpx.post(f"{emu.url}/auth/logout", json={"token": renewed["access_token"]}, timeout=10)
        first, second = await asyncio.gather(authenticator.refresh_user(user), authenticator.refresh_user(user))
        assert first and second and accepts(emu, user.state["access_token"])

        final = user.state["access_token"]
        seen.append(final)
        await authenticator.end_sign_in(user)
        assert user.state is None and not accepts(emu, final)

    asyncio.run(go())
    for secret in seen:
        assert secret not in caplog.text


def test_a_wrong_code_and_another_logins_code_are_refused_with_a_message(
    emu: Emulator, authenticator: SpeckleAuthenticator
) -> None:
    code = code_of(consent(emu, "another-challenge-for-this-code-0000000"))

    async def go() -> None:
        with pytest.raises(web.HTTPError) as refused:
            await authenticator.authenticate(Callback({"access_code": "0" * 42}))
        assert refused.value.status_code == 403 and "Speckle did not sign you in" in str(refused.value.log_message)
        with pytest.raises(web.HTTPError):  # the code belongs to another login's challenge
            await authenticator.authenticate(Callback({"access_code": code}))

    asyncio.run(go())


def test_who_may_use_the_hub(emu: Emulator, authenticator: SpeckleAuthenticator) -> None:
    def model(email: str) -> dict[str, Any]:
        return {"name": email, "admin": None, "auth_state": {"speckle_user": {"email": email}}}

    def allowed(email: str) -> bool:
        return asyncio.run(authenticator.check_allowed(email, model(email)))  # makes no HTTP call

    assert not allowed("ada@example.com")  # nobody, until the admin says who
    authenticator.allowed_domains = {"example.com"}
    assert allowed("ada@example.com") and not allowed("alan@example.org")
    authenticator.allowed_users = {"alan@example.org"}
    assert allowed("alan@example.org")
    assert authenticator.normalize_username("Ada@Example.COM") == "ada@example.com"
