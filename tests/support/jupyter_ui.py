"""What the browser and hub tests drive in headless Chromium (Debian's, under Playwright): a notebook open in
JupyterLab 4 or Notebook 7 (through `window.jupyterapp`), the login panel in it, Speckle's own sign-in and consent
pages, the secrets a test has seen, and screenshots. The Jupyter servers are support/jupyter_server.py's; the
`browser` fixture is support/fixtures_browser.py's.

Nothing here sleeps for a fixed time: every wait is a poll or a Playwright wait with a deadline.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import REPO
from support.jupyter_server import JupyterServer
from support.processes import http_client, log_tail

SCREENSHOTS = REPO / "test-output" / "screenshots"

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


# --- Chromium ---------------------------------------------------------------------------------------------------


def chromium_missing_message() -> str | None:
    if os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return (
        f"Debian's Chromium is not installed at {CHROMIUM}: the browser tests drive it through Playwright "
        "(`playwright install` cannot download here). Install it with `apt-get install -y chromium` "
        "(the test command does this when run as root)."
    )


def chromium() -> Iterator[Any]:
    """Headless Chromium for one test (support/fixtures_browser.py's `browser`): function-scoped on purpose,
    since pytest-jupyter's autouse asyncio-loop fixture replaces the event loop around every test, and
    Playwright's sync API must neither run inside a running loop nor outlive its own."""
    missing = chromium_missing_message()
    if missing:
        pytest.fail(missing, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian Chromium with the popup blocker left on."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        ignore_default_args=CHROMIUM_IGNORED_DEFAULTS,
    )


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

    def wait_for_output(self, index: int, text: str, timeout: float = 30.0) -> None:
        """Cell `index` has an output holding `text` (a cell Run All reaches only after a sign-in, say)."""
        self.page.wait_for_function(
            "([index, text]) => { const p = window.jupyterapp.shell.currentWidget;"
            " const out = p.content.widgets[index].model.outputs; return out.length > 0"
            " && JSON.stringify(out.toJSON()).includes(text); }",
            arg=[index, text], timeout=timeout * 1000, polling=100,
        )

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


def speckle_sign_in(tab: Any, email: str, password: str, decision: str | None = "Authorize") -> None:
    """On the emulator's pages in `tab`: sign in (unless this browser already has a Speckle session), then press
    `decision` ("Authorize" or "Deny") on the consent page. `decision=None` for a trusted app (Speckle's connector
    app): the sign-in page is all there is, no consent page follows."""
    from playwright.sync_api import expect

    def sign_in() -> None:
        email_input.fill(email)
        tab.locator("input[name=password]").fill(password)
        tab.get_by_role("button", name="Sign in").click()

    email_input = tab.locator("input[name=email]")
    if decision is None:
        sign_in()
        return
    decide = tab.get_by_role("button", name=decision)
    expect(email_input.or_(decide)).to_be_visible(timeout=15_000)
    if email_input.is_visible():
        sign_in()
    expect(decide).to_be_visible(timeout=15_000)
    decide.click()


def screenshot(panel: PanelUI, name: str) -> Path:
    """The panel's cell, kept under test-output/screenshots/ (named at the end of the run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    panel.cell.screenshot(path=str(path), animations="disabled")
    print(f"screenshot: {path}")
    return path


# --- a browser test's stack and session (the fixtures are tests/browser/conftest.py's) -----------------------------


@dataclass
class Stack:
    """The emulator and the Jupyter server configured for it."""

    frontend: str
    emulator: Any
    jupyter: JupyterServer

    @property
    def credentials(self) -> dict[str, Any]:
        return dict(self.emulator.credentials)


@dataclass
class Session:
    """One test's browser context and notebook."""

    stack: Stack
    context: Any
    page: Any
    ui: NotebookUI
    path: Path
    ledger: SecretLedger
    problems: list[str]

    def diagnostics(self) -> str:
        """What to print when something fails: the browser's errors and the server log's tail."""
        console = "\n".join(self.problems[-30:]) or "(none)"
        server_log = log_tail(self.stack.jupyter.log_path, 40)
        return f"browser errors and speckle-auth requests:\n{console}\n--- jupyter log ---\n{server_log}"
