"""The server extension's configuration as Jupyter starts it: broken entries reported while the rest works, a
secret written in the configuration, the environment's one server, the start-up check of the app's redirect URL,
and the callback URL under JupyterHub. A real Jupyter server and the emulator, as in test_routes.py."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.routes import (
    BASE,
    FLOW,
    Browser,
    Recorder,
    callback,
    consent,
    log_in_fully,
    start_login,
)

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp

HUB_CALLBACK = "https://hub.example.org/hub/user-redirect/speckle-auth/callback"


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
