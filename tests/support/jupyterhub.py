"""A real JupyterHub on loopback for the hub tests (tests/hub/real/): DummyAuthenticator, SimpleLocalProcessSpawner,
configurable-http-proxy from <repo>/node_modules/.bin, single-user JupyterLab servers from this venv with the
server extension; and the hub's users as people in headless Chromium (`HubUser`). The hub with the Speckle login
service and real Unix users is support/service_hub.py's.

The emulator's app has ONE redirect URL, the hub's `.../hub/user-redirect/speckle-auth/callback`, as a real
deployment registers it.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import httpx

from support import REPO, TESTS
from support.jupyter_server import DEFAULT_SETTINGS, write_notebook, write_settings
from support.jupyter_ui import NotebookUI, PanelUI, record_speckle_auth_traffic, speckle_sign_in
from support.memory_keyring import KEYRING_ENV
from support.processes import LOOPBACK, free_port, http_client, is_root, log_tail, start_server, stop_process

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
        self.proc = start_server([sys.executable, "-m", "jupyterhub", "-f", str(config)], log=self.log_path,
                                 cwd=self.tmp, env=env, ready=self.ready, what=f"JupyterHub at {self.url}",
                                 timeout=HUB_START_TIMEOUT)
        return self

    def ready(self) -> bool:
        """Whether the hub answers its REST API, through the proxy."""
        try:
            with http_client() as http:
                answer = http.get(f"{self.url}hub/api/")
            return answer.status_code == 200 and "version" in answer.json()
        except (httpx.HTTPError, ValueError):
            return False

    def stop(self) -> None:
        """SIGTERM: the hub stops the single-user servers (cleanup_servers) and its proxy, then exits."""
        if self.proc is not None:
            stop_process(self.proc, timeout=30)


class HubUser:
    """A person with their own browser, logged in to the hub, with a notebook open on their own server."""

    def __init__(self, hub: Any, browser: Any, name: str) -> None:
        self.hub = hub
        self.name = name
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda err: self.problems.append(f"pageerror: {err}"))
        record_speckle_auth_traffic(self.context, self.problems)
        self.login_requests: list[str] = []
        self.context.on("request", lambda request: self.login_requests.append(request.url)
                        if "/speckle-auth/login?" in request.url else None)
        self.ui = NotebookUI(self.page, "lab")
        self.panel: PanelUI | None = None

    def open_notebook(self, cells: list[str]) -> None:
        """Write a notebook into this user's home and start towards it: the hub login page, with the notebook
        as `next`. The hub spawns the user's server (or finds it running) and sends the browser there. Returns
        once the login is submitted; `wait_for_notebook` waits for the rest, so two users can go at once."""
        name = f"{self.name}-{secrets.token_hex(3)}.ipynb"
        write_notebook(self.hub.home(self.name) / name, cells)
        # through user-redirect, which spawns a stopped server on the way (a bare /user/... URL would not)
        target = f"/hub/user-redirect/lab/workspaces/w{secrets.token_hex(4)}/tree/{name}"
        page = self.page
        page.goto(f"{self.hub.url}hub/login?next={quote(target, safe='')}")
        page.locator("#username_input").fill(self.name)
        page.locator("#password_input").fill(self.hub.password)
        page.locator("#login_submit").click()

    def wait_for_notebook(self) -> None:
        try:
            self.page.wait_for_url(re.compile(re.escape(self.hub.user_url(self.name, "lab/workspaces/"))),
                                   timeout=60_000)
            self.ui.wait_for_kernel(timeout=60)
        except Exception as err:
            raise AssertionError(f"{self.name}'s notebook never got an idle kernel: {err}\n{self.diagnostics()}") \
                from None

    def start_panel(self) -> PanelUI:
        self.ui.run_cell(0)
        self.panel = PanelUI(self.ui, 0)
        try:
            self.panel.wait_shown()
        except AssertionError as err:
            raise AssertionError(f"{self.name}'s login panel: {err}\n{self.diagnostics()}") from None
        return self.panel

    def flow_id(self) -> str:
        """The id of the login this browser started last (from the request the sign-in tab made)."""
        assert self.login_requests, f"{self.name}'s browser never requested speckle-auth/login"
        return parse_qs(urlsplit(self.login_requests[-1]).query)["flow"][0]

    def flow_status(self, flow_id: str) -> dict[str, Any]:
        """What this user's own server says about a flow, asked from their notebook tab (their Jupyter session)."""
        return self.page.evaluate(
            """async (id) => {
                 const base = JSON.parse(document.getElementById('jupyter-config-data').textContent).baseUrl;
                 // JupyterHub refuses a cookie-authenticated fetch without the XSRF header, GETs included
                 const xsrf = (document.cookie.match(/(?:^|;\\s*)_xsrf=([^;]*)/) || [])[1] || '';
                 const r = await fetch(base + 'speckle-auth/flows/' + id,
                                       {credentials: 'same-origin', headers: {'X-XSRFToken': xsrf}});
                 return {http: r.status, ...(await r.json())};
               }""",
            flow_id,
        )

    def diagnostics(self) -> str:
        return ("browser errors and speckle-auth requests:\n" + ("\n".join(self.problems[-20:]) or "(none)")
                + f"\n--- jupyterhub log ---\n{log_tail(self.hub.log_path, 40)}")

    def close(self) -> None:
        self.context.close()


def hold_speckle_redirect(hub: Any, tab: Any, user: dict[str, str]) -> str:
    """Sign in and authorize on Speckle in `tab`, but keep Speckle's redirect to the callback (the one registered
    URL, carrying the access code) from the browser: return it, and show the tab a placeholder instead."""
    held: list[str] = []

    def hold(route: Any) -> None:
        request = route.request
        if request.method != "POST" or "action=authorize" not in (request.post_data or ""):
            route.continue_()
            return
        answer = route.fetch(max_redirects=0)
        held.append(urljoin(request.url, answer.headers.get("location", "")))
        route.fulfill(status=200, content_type="text/html", body="<h1>Redirect held by the test</h1>")

    from playwright.sync_api import expect

    pattern = f"{hub.emulator.url}/**"
    tab.route(pattern, hold)
    try:
        speckle_sign_in(tab, user["email"], user["password"], "Authorize")
        expect(tab.locator("h1")).to_have_text("Redirect held by the test")
    finally:
        tab.unroute(pattern)
    assert len(held) == 1, held
    assert held[0].startswith(hub.redirect_url + "?access_code="), held[0]
    return held[0]
