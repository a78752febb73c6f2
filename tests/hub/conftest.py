"""Fixtures of the JupyterHub tests: the emulator, a real JupyterHub (DummyAuthenticator, SimpleLocalProcessSpawner,
configurable-http-proxy from <repo>/node_modules/.bin) on loopback, and headless Debian Chromium.

The emulator's app has ONE redirect URL, the hub's `.../hub/user-redirect/speckle-auth/callback`, as a real
deployment registers it; each single-user server is JupyterLab from this venv with the server extension.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "browser"))

from jupyter_ui import (  # noqa: E402
    DEFAULT_SETTINGS,
    KEYRING_ENV,
    LOOPBACK,
    REPO,
    TESTS,
    browser,  # noqa: F401 - the Playwright fixture
    free_port,
    http_client,
    is_root,
    log_tail,
    poll,
    stop_process,
    write_settings,
)

HUB_USERS = ("alice", "bob")
HUB_START_TIMEOUT = 60.0
VENV_BIN = Path(sys.executable).parent
NODE_BIN = REPO / "node_modules" / ".bin"


@dataclass
class Hub:
    tmp: Path
    emulator: Any
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def redirect_url(self) -> str:
        return f"{self.url}hub/user-redirect/speckle-auth/callback"

    @property
    def log_path(self) -> Path:
        return self.tmp / "jupyterhub.log"

    def home(self, user: str) -> Path:
        return self.tmp / "home" / user

    def user_url(self, user: str, path: str = "") -> str:
        return f"{self.url}user/{user}/{path}"

    def config(self) -> str:
        creds = self.emulator.credentials
        settings = self.tmp / "settings"
        write_settings(settings, DEFAULT_SETTINGS)
        args = ["--LabApp.expose_app_in_browser=True", "--ServerApp.log_level=INFO"]
        if is_root():
            args.append("--allow-root")  # single-user servers refuse root otherwise (the hub then 500s)
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": str(TESTS),
            "PYTHONUNBUFFERED": "1",
            "SPECKLE_SERVER": self.emulator.url,
            "SPECKLE_APP_ID": creds["app_id"],
            "SPECKLE_APP_SECRET": creds["app_secret"],
            "SPECKLE_REDIRECT_URI": self.redirect_url,
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTER_PLATFORM_DIRS": "1",
            "SPECKLE_USERDATA_PATH": str(self.tmp / "no-desktop-accounts"),
            **KEYRING_ENV,
        }
        lines = [
            f"c.JupyterHub.bind_url = {self.url.rstrip('/')!r}",
            f"c.JupyterHub.hub_ip = {LOOPBACK!r}",
            f"c.JupyterHub.hub_port = {free_port()}",
            f"c.ConfigurableHTTPProxy.api_url = 'http://{LOOPBACK}:{free_port()}'",
            f"c.ConfigurableHTTPProxy.command = [{str(NODE_BIN / 'configurable-http-proxy')!r}]",
            f"c.JupyterHub.db_url = 'sqlite:///{self.tmp / 'jupyterhub.sqlite'}'",
            f"c.JupyterHub.cookie_secret_file = {str(self.tmp / 'jupyterhub_cookie_secret')!r}",
            f"c.JupyterHub.pid_file = {str(self.tmp / 'jupyterhub.pid')!r}",
            "c.JupyterHub.authenticator_class = 'dummy'",
            f"c.DummyAuthenticator.password = {self.password!r}",
            f"c.Authenticator.allowed_users = {set(HUB_USERS)!r}",
            "c.JupyterHub.spawner_class = 'simple'",
            f"c.SimpleLocalProcessSpawner.home_dir_template = {str(self.tmp / 'home' / '{username}')!r}",
            f"c.Spawner.ip = {LOOPBACK!r}",
            f"c.Spawner.cmd = [{str(VENV_BIN / 'jupyterhub-singleuser')!r}]",
            f"c.Spawner.args = {args!r}",
            "c.Spawner.default_url = '/lab'",
            "c.Spawner.start_timeout = 60",
            "c.Spawner.http_timeout = 60",
            f"c.Spawner.environment = {environment!r}",
            "c.JupyterHub.cleanup_servers = True",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> Hub:
        (self.tmp / "no-desktop-accounts").mkdir(parents=True, exist_ok=True)
        for user in HUB_USERS:
            self.home(user).mkdir(parents=True, exist_ok=True)
        config = self.tmp / "jupyterhub_config.py"
        config.write_text(self.config())
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("SPECKLE_") and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env["PATH"] = os.pathsep.join([str(NODE_BIN), str(VENV_BIN), env.get("PATH", "")])
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=self.tmp, env=env, stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(
                    f"JupyterHub exited with {self.proc.returncode} while starting:\n{log_tail(self.log_path)}",
                    pytrace=False,
                )
            try:
                with http_client() as http:  # through the proxy to the hub
                    answer = http.get(f"{self.url}hub/api/")
                return answer.status_code == 200 and "version" in answer.json()
            except (httpx.HTTPError, ValueError):
                return False

        try:
            poll(ready, timeout=HUB_START_TIMEOUT, interval=0.2, what=f"JupyterHub at {self.url}")
        except AssertionError as err:
            pytest.fail(f"{err}\n--- jupyterhub log ---\n{log_tail(self.log_path)}", pytrace=False)

    def stop(self) -> None:
        """SIGTERM: the hub stops the single-user servers (cleanup_servers) and its proxy, then exits."""
        if self.proc is not None:
            stop_process(self.proc, timeout=30)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    from speckle_nb_auth.emulator import Emulator

    missing = [p for p in (NODE_BIN / "configurable-http-proxy", VENV_BIN / "jupyterhub-singleuser") if not p.exists()]
    if missing:
        pytest.fail(f"missing for the hub tests: {', '.join(map(str, missing))} (run the test command, which "
                    "installs configurable-http-proxy with npm)", pytrace=False)
    tmp = tmp_path_factory.mktemp("hub")
    port = free_port()
    redirect = f"http://{LOOPBACK}:{port}/hub/user-redirect/speckle-auth/callback"
    with Emulator(host=LOOPBACK, port=0, redirect_url=redirect) as emu:
        hub = Hub(tmp, emu, port=port)
        assert emu.credentials["redirect_url"] == hub.redirect_url
        hub.start()
        try:
            yield hub
        finally:
            hub.stop()

