"""What the browser and hub tests share: Debian's Chromium under Playwright, real Jupyter servers as subprocesses,
and a driver for a notebook open in JupyterLab 4 or Notebook 7 (through `window.jupyterapp`).

Nothing here sleeps for a fixed time: every wait is a poll or a Playwright wait with a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.memory_keyring import KEYRING_ENV  # every browser/hub test's kernel uses it

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
SCREENSHOTS = REPO / "test-output" / "screenshots"
SCREENSHOTS_TAKEN: list[Path] = []  # listed at the end of the run (the browser conftest's terminal summary)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Playwright adds --disable-popup-blocking by default; without it, "the tab opened" proves the popup passed
# Chromium's real popup blocker.
CHROMIUM_IGNORED_DEFAULTS = ["--disable-popup-blocking"]

LOOPBACK = "127.0.0.1"
SERVER_START_TIMEOUT = 60.0
SPECKLE_VARIABLES = ("SPECKLE_TOKEN", "SPECKLE_SERVER", "SPECKLE_APP_ID", "SPECKLE_APP_SECRET",
                     "SPECKLE_REDIRECT_URI")


# --- Chromium ---------------------------------------------------------------------------------------------------


def chromium_missing_message() -> str | None:
    if os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return (
        f"Debian's Chromium is not installed at {CHROMIUM}: the browser tests drive it through Playwright "
        "(`playwright install` cannot download here). Install it with `apt-get install -y chromium` "
        "(the test command does this when run as root)."
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, per test. Function-scoped on purpose: pytest-jupyter's autouse asyncio-loop fixture
    replaces the event loop around every test, and Playwright's sync API must neither run inside a running loop
    nor outlive its own. Imported into the browser and hub conftests."""
    missing = chromium_missing_message()
    if missing:
        pytest.fail(missing, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian Chromium with the popup blocker left on."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        ignore_default_args=CHROMIUM_IGNORED_DEFAULTS,
    )


# --- processes and ports ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def poll(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition",
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Call `check` until it returns something truthy (which is returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")
        time.sleep(interval)


def http_client(**kwargs: Any) -> httpx.Client:
    """An HTTP client that ignores proxy settings: every test request stays on loopback."""
    return httpx.Client(trust_env=False, timeout=10.0, **kwargs)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """SIGTERM to the process group and wait (Jupyter shuts its kernels down; the hub its servers and proxy),
    then SIGKILL whatever is left in the group."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    # children (kernels) that outlived their parent
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def clean_environment(tmp: Path) -> dict[str, str]:
    """The environment for a Jupyter process: no developer Speckle credentials, desktop accounts, Jupyter or
    IPython configuration; the in-memory keyring for kernels; no proxies."""
    env = {key: value for key, value in os.environ.items() if key not in SPECKLE_VARIABLES}
    for key in list(env):
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del env[key]
    for name in ("config", "data", "runtime", "ipython", "desktop-accounts"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        SPECKLE_USERDATA_PATH=str(tmp / "desktop-accounts"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p),
        **KEYRING_ENV,
    )
    return env


# --- JupyterLab settings ----------------------------------------------------------------------------------------

NOTIFICATION_SETTINGS = ("@jupyterlab/apputils-extension", "notification",
                         {"fetchNews": "false", "checkForUpdates": False})
WIDGET_SETTINGS = ("@jupyter-widgets/jupyterlab-manager", "plugin", {"saveState": True})
LIGHT_THEME_SETTINGS = ("@jupyterlab/apputils-extension", "themes", {"theme": "JupyterLab Light"})


def write_settings(settings_dir: Path, entries: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
    """(Re)write the user settings: the news notification silenced, widget state saved, the light theme.
    jupyterlab_server reads these files on every request, so rewriting them resets a running server."""
    if settings_dir.exists():
        shutil.rmtree(settings_dir)
    for package, plugin, values in entries:
        target = settings_dir / package / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


DEFAULT_SETTINGS = (NOTIFICATION_SETTINGS, WIDGET_SETTINGS, LIGHT_THEME_SETTINGS)


# --- a Jupyter server -------------------------------------------------------------------------------------------


@dataclass
class JupyterServer:
    """JupyterLab 4 (`frontend="lab"`) or Notebook 7 (`"notebook"`) as a subprocess on loopback."""

    frontend: str
    root_dir: Path
    tmp: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def settings_dir(self) -> Path:
        return self.tmp / "settings"

    @property
    def workspaces_dir(self) -> Path:
        return self.tmp / "workspaces"

    @property
    def log_path(self) -> Path:
        return self.tmp / f"jupyter-{self.frontend}.log"

    def command(self) -> list[str]:
        module, app = {"lab": ("jupyterlab", "LabApp"), "notebook": ("notebook", "JupyterNotebookApp")}[self.frontend]
        args = [
            sys.executable, "-m", module,
            "--no-browser",
            f"--ip={LOOPBACK}",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--{app}.workspaces_dir={self.workspaces_dir}",
            f"--{app}.user_settings_dir={self.settings_dir}",
            f"--{app}.expose_app_in_browser=True",
            "--ServerApp.log_level=INFO",
        ]
        if is_root():
            args.append("--allow-root")
        return args

    def start(self) -> JupyterServer:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.workspaces_dir.mkdir(parents=True, exist_ok=True)
        write_settings(self.settings_dir, DEFAULT_SETTINGS)
        env = clean_environment(self.tmp)
        env.update(
            JUPYTERLAB_SETTINGS_DIR=str(self.settings_dir),
            JUPYTERLAB_WORKSPACES_DIR=str(self.workspaces_dir),
            **self.extra_env,
        )
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603
            self.command(), cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        assert self.proc is not None

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"Jupyter ({self.frontend}) exited with {self.proc.returncode} while starting:\n"
                    f"{log_tail(self.log_path)}"
                )
            try:
                with self.api() as http:
                    return http.get(self.api_url("api/status")).status_code == 200
            except httpx.HTTPError:
                return False

        poll(ready, timeout=timeout, interval=0.2, what=f"Jupyter ({self.frontend}) at {self.url}",
             on_timeout=lambda: log_tail(self.log_path))

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def api_url(self, path: str) -> str:
        return f"{self.url}{path}"

    def api(self) -> httpx.Client:
        return http_client(headers={"Authorization": f"token {self.token}"})

    def notebook_url(self, name: str, workspace: str) -> str:
        if self.frontend == "lab":
            return f"{self.url}lab/workspaces/{workspace}/tree/{name}?reset"
        return f"{self.url}notebooks/{name}"

    def shutdown_kernels(self) -> None:
        """Stop every kernel: a test's kernel must not keep one of the two cores busy for the next test."""
        with self.api() as http:
            for session in http.get(self.api_url("api/sessions")).json():
                http.delete(self.api_url(f"api/sessions/{session['id']}"))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def reset_browser_state(self) -> None:
        """A fresh Lab workspace and fresh user settings for the next test."""
        shutil.rmtree(self.workspaces_dir, ignore_errors=True)
        self.workspaces_dir.mkdir(parents=True)
        write_settings(self.settings_dir, DEFAULT_SETTINGS)


# --- notebooks on disk ------------------------------------------------------------------------------------------


def write_notebook(path: Path, sources: Iterable[str]) -> Path:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell-{index}", "metadata": {}, "outputs": [],
         "source": source}
        for index, source in enumerate(sources)
    ]
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))
    return path


# --- a notebook in the browser ----------------------------------------------------------------------------------

_KERNEL_IDLE = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell && app.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.context || !panel.context.isReady || !panel.content) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel || kernel.status !== 'idle' || kernel.connectionStatus !== 'connected') return null;
  return panel.content.widgets.length;
}"""

_RUN_CELL = """async (index) => {
  const app = window.jupyterapp;
  const notebook = app.shell.currentWidget.content;
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  const count = notebook.widgets[index].model.executionCount;
  // not awaited: the panel's cell returns at once, but a failed execution must not hang evaluate()
  app.commands.execute('notebook:run-cell');
  return count;
}"""

_CELL_STATE = """(index) => {
  const cell = window.jupyterapp.shell.currentWidget.content.widgets[index];
  const outputs = cell.model.outputs.toJSON();
  const texts = outputs.map((out) => {
    if (out.output_type === 'stream') return Array.isArray(out.text) ? out.text.join('') : out.text;
    if (out.output_type === 'error') return out.ename + ': ' + out.evalue;
    const data = out.data || {};
    const plain = data['text/plain'];
    return plain === undefined ? '' : (Array.isArray(plain) ? plain.join('') : plain);
  });
  return {count: cell.model.executionCount, text: texts.join(''),
          types: outputs.map((out) => out.output_type),
          kernel: window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status};
}"""


class NotebookUI:
    """A notebook open in JupyterLab or Notebook 7, driven through the exposed `window.jupyterapp`."""

    def __init__(self, page: Any, frontend: str) -> None:
        self.page = page
        self.frontend = frontend

    def wait_for_kernel(self, timeout: float = 60.0) -> None:
        self.page.wait_for_function(_KERNEL_IDLE, timeout=timeout * 1000, polling=100)

    def execute(self, command: str, args: Mapping[str, Any] | None = None) -> None:
        """Run a JupyterLab command (`app.commands.execute`) and wait for it to finish."""
        self.page.evaluate(
            "async ([command, args]) => { await window.jupyterapp.commands.execute(command, args); return null; }",
            [command, dict(args or {})],
        )

    def cell_state(self, index: int) -> dict[str, Any]:
        return self.page.evaluate(_CELL_STATE, index)

    def run_cell(self, index: int, timeout: float = 60.0) -> str:
        """Run cell `index` and wait until it has finished (a new execution count, kernel idle); its text."""
        before = self.page.evaluate(_RUN_CELL, index)
        self.page.wait_for_function(
            """([index, before]) => {
                 const panel = window.jupyterapp.shell.currentWidget;
                 const count = panel.content.widgets[index].model.executionCount;
                 const kernel = panel.sessionContext.session.kernel;
                 return count !== null && count !== before && kernel.status === 'idle';
               }""",
            arg=[index, before], timeout=timeout * 1000, polling=100,
        )
        return str(self.cell_state(index)["text"])

    def cell(self, index: int) -> Any:
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def save(self, timeout: float = 20.0) -> None:
        self.execute("docmanager:save")
        self.page.wait_for_function(
            "() => { const p = window.jupyterapp.shell.currentWidget; return !p.context.model.dirty; }",
            timeout=timeout * 1000, polling=100,
        )

    def set_theme(self, theme: str, timeout: float = 30.0) -> None:
        """Switch the theme (`apputils:change-theme`) and wait until its stylesheet has applied."""
        colour = "() => getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim()"
        if self.page.evaluate("() => document.body.dataset.jpThemeName") == theme:
            return
        before = self.page.evaluate(colour)
        self.execute("apputils:change-theme", {"theme": theme})
        self.page.wait_for_function(
            """([theme, before]) => document.body.dataset.jpThemeName === theme
                 && getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim() !== before""",
            arg=[theme, before], timeout=timeout * 1000, polling=100,
        )


# --- the emulator, seen from a test -----------------------------------------------------------------------------

PAT_SCOPES = ["profile:read", "profile:email", "streams:read", "users:read"]


def mint_pat(emu: Any, user: int = 0, name: str = "browser test") -> str:
    """A fresh personal access token for a seeded user, made as Speckle's web frontend would (its session token):
    tests that log out revoke their token, so none may share one."""
    creds = emu.credentials
    query = "mutation($token: ApiTokenCreateInput!) { apiTokenCreate(token: $token) }"
    with http_client() as http:
        answer = http.post(
            f"{emu.url}/graphql",
            json={"query": query, "variables": {"token": {"name": name, "scopes": PAT_SCOPES}}},
            headers={"Authorization": f"Bearer {creds['users'][user]['session_token']}"},
        )
    answer.raise_for_status()
    body = answer.json()
    assert "errors" not in body, body
    return str(body["data"]["apiTokenCreate"])


def token_is_valid(emu: Any, token: str) -> bool:
    with http_client() as http:
        answer = http.post(f"{emu.url}/graphql", json={"query": "{ activeUser { id } }"},
                           headers={"Authorization": f"Bearer {token}"})
    try:
        return bool(answer.json()["data"]["activeUser"])
    except (ValueError, KeyError, TypeError):
        return False


def issued_secrets(emu: Any) -> list[str]:
    """Every secret the emulator has handed out so far, including the OAuth token the test itself never sees."""
    return list(emu.issued_secrets())


class SecretLedger:
    """The secrets a test has seen come and go: the emulator's live secrets are snapshotted whenever asked
    (a revoked token or a used code disappears from it), and access codes are caught in the browser's traffic."""

    def __init__(self, emu: Any) -> None:
        self.emu = emu
        self.known: set[str] = set()
        self.snapshot()

    def snapshot(self) -> set[str]:
        self.known.update(issued_secrets(self.emu))
        return self.known

    def watch(self, context: Any) -> None:
        """Record every `access_code` that passes through this browser context."""
        from urllib.parse import parse_qs, urlsplit

        def on_request(request: Any) -> None:
            for code in parse_qs(urlsplit(request.url).query).get("access_code", []):
                self.known.add(code)

        context.on("request", on_request)

    def check(self, text: str, where: str, *, tails: bool = True) -> None:
        assert_no_secret(text, self.snapshot(), where, tails=tails)


def assert_no_secret(text: str, secrets_: Iterable[str], where: str, *, tails: bool = True) -> None:
    """Neither a secret nor (with `tails`) its last 8 characters, what a "…abcd1234" hint would show, appear in
    `text`. Leave `tails` off for long logs full of hex ids, where 8 hex characters could match by chance."""
    for secret in secrets_:
        assert secret not in text, f"a token/secret appears in {where}"
        if tails:
            assert secret[-8:] not in text, f"the last 8 characters of a token/secret appear in {where}"


def record_speckle_auth_traffic(context: Any, sink: list[str]) -> None:
    """Append "METHOD path -> status" (no query: it may hold a code) for every speckle-auth request."""
    from urllib.parse import urlsplit

    def on_response(response: Any) -> None:
        if "/speckle-auth/" in response.url:
            sink.append(f"{response.request.method} {urlsplit(response.url).path} -> {response.status}")

    context.on("response", on_response)


# --- the login panel --------------------------------------------------------------------------------------------

LOGIN_BUTTON = "Log in with Speckle"


class PanelUI:
    """The login panel (speckle_nb_auth/panel/panel.js) in the output of notebook cell `index`."""

    def __init__(self, ui: NotebookUI, index: int) -> None:
        self.ui = ui
        self.page = ui.page
        self.cell = ui.cell(index)
        self.root = self.cell.locator(".snb-panel")
        self.login_button = self.root.get_by_role("button", name=LOGIN_BUTTON)
        self.signed_in = self.root.locator(".snb-in")
        self.signed_out = self.root.locator(".snb-out")
        self.user_name = self.root.locator(".snb-user-name")
        self.user_email = self.root.locator(".snb-user-email")
        self.status = self.root.locator(".snb-status")
        self.error = self.root.locator(".snb-error")
        self.logout_button = self.root.locator("button.snb-logout")
        self.cancel_button = self.root.locator("button.snb-cancel")
        self.blocked_link = self.root.locator(".snb-open-link")
        self.pat_box = self.root.locator(".snb-pat-box")
        self.pat_input = self.root.locator("input.snb-pat-input")
        self.pat_submit = self.root.locator(".snb-pat-submit")

    def wait_shown(self, timeout: float = 30.0) -> None:
        """The panel is rendered and knows the server extension (its OAuth button is enabled)."""
        from playwright.sync_api import expect

        no_extension = self.root.locator(".snb-noext")
        expect(self.root).to_be_visible(timeout=timeout * 1000)
        # settled: the OAuth button enabled (the extension answered), or the "no extension here" note shown
        self.page.wait_for_function(
            """(root) => {
                 const button = root.querySelector('button.snb-login');
                 const note = root.querySelector('.snb-noext');
                 return (button && !button.hidden && !button.disabled) || (note && !note.hidden);
               }""",
            arg=self.root.element_handle(), timeout=timeout * 1000, polling=100,
        )
        if no_extension.is_visible():
            raise AssertionError(
                "the panel found no server extension, so it offers no 'Log in with Speckle': "
                f"{no_extension.inner_text()!r}"
            )
        expect(self.login_button).to_be_visible()
        expect(self.login_button).to_be_enabled()

    def click_login(self, context: Any, timeout: float = 15.0) -> Any:
        """Click "Log in with Speckle" like a person; the sign-in tab it opens (fails if none opened)."""
        with context.expect_page(timeout=timeout * 1000) as new_tab:
            self.login_button.click()
        tab = new_tab.value
        tab.wait_for_load_state("domcontentloaded")
        return tab

    def enter_pat(self, token: str) -> None:
        if not self.pat_input.is_visible():
            self.pat_box.locator("summary").click()
        self.pat_input.fill(token)
        self.pat_submit.click()

    def expect_signed_in(self, name: str, timeout: float = 30.0) -> None:
        from playwright.sync_api import expect

        expect(self.user_name).to_have_text(name, timeout=timeout * 1000)
        expect(self.signed_in).to_be_visible(timeout=timeout * 1000)
        expect(self.signed_out).to_be_hidden(timeout=timeout * 1000)
        expect(self.logout_button).to_be_visible()

    def expect_signed_out(self, timeout: float = 30.0) -> None:
        from playwright.sync_api import expect

        expect(self.signed_in).to_be_hidden(timeout=timeout * 1000)
        expect(self.signed_out).to_be_visible(timeout=timeout * 1000)
        expect(self.login_button).to_be_visible()


def speckle_sign_in(tab: Any, email: str, password: str, decision: str = "Authorize") -> None:
    """On the emulator's pages in `tab`: sign in (unless this browser already has a Speckle session), then press
    `decision` ("Authorize" or "Deny") on the consent page."""
    from playwright.sync_api import expect

    decide = tab.get_by_role("button", name=decision)
    email_input = tab.locator("input[name=email]")
    expect(email_input.or_(decide)).to_be_visible(timeout=15_000)
    if email_input.is_visible():
        email_input.fill(email)
        tab.locator("input[name=password]").fill(password)
        tab.get_by_role("button", name="Sign in").click()
    expect(decide).to_be_visible(timeout=15_000)
    decide.click()
