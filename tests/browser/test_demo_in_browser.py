"""`make demo` as a newcomer follows what it prints, in headless Chromium and with the mouse and keyboard only (the
demo's JupyterLab exposes nothing to scripts): open the printed address, Run → Run All Cells on the quickstart,
click "Log in with Speckle", sign in with the printed email and password, and every cell runs; then "Remember me"
keeps the sign-in in the demo-only keyring, so after a kernel restart `login()` signs in at once."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.demo import running_demo
from support.jupyter_ui import NotebookUI, PanelUI, speckle_sign_in
from support.processes import poll

pytestmark = pytest.mark.browser

LOGIN_CELL = 1  # the quickstart's cell with login(), counting its Markdown cells

# every code cell's prompt and whether its outputs hold an error, as the page shows them
_PROMPTS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map((cell) => ({
  prompt: cell.querySelector('.jp-InputPrompt').textContent.trim(),
  error: !!cell.querySelector('[data-mime-type="application/vnd.jupyter.stderr"]')}))"""


def menu(page: Any, top: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def all_ran(page: Any) -> list[dict[str, Any]] | None:
    prompts = page.evaluate(_PROMPTS)
    done = all(re.fullmatch(r"\[\d+\]:", p["prompt"]) for p in prompts)
    return prompts if done else None


def test_the_demo_as_printed(browser: Any) -> None:
    with running_demo() as demo:
        email, password = re.search(r"(\S+@example\.com)  password (\S+)", demo.text).groups()  # type: ignore[union-attr]
        keyring_file = Path(re.search(r"a plain file, (\S+),", demo.text).group(1))  # type: ignore[union-attr]
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto(demo.lab)
        idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$"))
        expect(idle).to_be_visible(timeout=60_000)

        menu(page, "Run", "Run All Cells")
        panel = PanelUI(NotebookUI(page, "lab"), LOGIN_CELL)
        expect(panel.login_button).to_be_enabled(timeout=60_000)
        tab = panel.click_login(context)
        speckle_sign_in(tab, email, password, decision=None)  # the connector app: no consent page
        expect(panel.signed_in).to_be_visible(timeout=30_000)
        prompts = poll(lambda: all_ran(page), timeout=120, what="every cell of the quickstart to have run")
        assert not any(p["error"] for p in prompts), prompts
        name = panel.user_name.inner_text()
        assert name in page.locator(".jp-Notebook .jp-Cell").nth(LOGIN_CELL + 2).inner_text()  # "Who am I?"
        status = page.locator("#speckle-nb-auth-status")  # the status bar's item, built by make demo
        expect(status).to_have_text(re.compile(rf"^Speckle: {re.escape(name)} on "))

        # "Remember me", ticked once signed in, goes to the demo-only keyring
        panel.root.locator("input.snb-remember").check()
        poll(lambda: keyring_file.exists() and json.loads(keyring_file.read_text()), timeout=30,
             what=f"the sign-in remembered in {keyring_file}")
        menu(page, "Kernel", "Restart Kernel…")
        page.locator(".jp-Dialog button.jp-mod-accept").click()  # "Restart"
        expect(idle).to_be_visible(timeout=60_000)
        page.locator(".jp-Notebook .jp-Cell").nth(LOGIN_CELL).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")  # login() again: it finds the remembered sign-in
        expect(PanelUI(NotebookUI(page, "lab"), LOGIN_CELL).user_name).to_have_text(name, timeout=30_000)
        expect(status).to_have_text(re.compile(rf"^Speckle: {re.escape(name)} on "))
        assert "From the sign-in remembered on this machine" in (status.get_attribute("title") or "")
        context.close()

        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(30) == 0
        assert not keyring_file.exists()
