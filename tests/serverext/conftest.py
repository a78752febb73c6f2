"""Fixtures of the server-extension tests: a real Jupyter server (pytest-jupyter, base_url `/a%40b/`) with the
extension, configured for a fresh Speckle emulator whose app sends users back to it, the extension app, browsers
(support/routes.py plays them), and the server's log. A test module or class overrides `extension_config`,
`challenge_method`, `callback_url` or `emulator` to set the server up otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from support.routes import BASE, PAT_ONLY, Browser, Recorder, browser_for
from traitlets.config import Config

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp


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
        "public_app": False,  # a server without an app takes tokens only (test_routes_public_app.py: the rest)
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


@pytest.fixture
def browser(
    jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_asyncio_loop: Any
) -> Iterator[Browser]:
    """The user's browser, logged in to Jupyter."""
    yield from browser_for(jp_http_port, jp_asyncio_loop, jp_serverapp.identity_provider.token)


@pytest.fixture
def other_browser(
    jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_asyncio_loop: Any
) -> Iterator[Browser]:
    """Another browser logged in to Jupyter (the user's other one, or an attacker's link): no flow cookie."""
    yield from browser_for(jp_http_port, jp_asyncio_loop, jp_serverapp.identity_provider.token)


@pytest.fixture
def anonymous(
    jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_asyncio_loop: Any
) -> Iterator[Browser]:
    """A browser without a Jupyter session."""
    yield from browser_for(jp_http_port, jp_asyncio_loop, None)


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
