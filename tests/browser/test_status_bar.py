"""The prebuilt JupyterLab extension (frontend/): the current notebook's Speckle sign-in in JupyterLab's status bar
and Notebook 7's top bar, in headless Chromium against a real Jupyter server, a real kernel and the emulator.

Each test runs once per frontend (the `stack` fixture's parameter) and walks through several states in one
notebook, as a person would (a notebook and its kernel per state would cost CI a minute). The item learns the
sign-in from the kernel over a comm, so every change a person can make is followed: a token or "Log in with
Speckle" sign-in in a panel, Log out from the item's menu or the palette, a kernel restart, a kernel that is not
Python, another notebook.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support import REPO, TESTS
from support.jupyter_ui import PAT_SCOPES, SCREENSHOTS, PanelUI, http_client, speckle_sign_in, token_is_valid

pytestmark = pytest.mark.browser

LOGIN_CELL = "from speckle_nb_auth import login\nlogin(wait=False)"
ITEM = "#speckle-nb-auth-status"
SIGNED_OUT = "Speckle: not signed in"
DAY_MS = 24 * 3600 * 1000
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


def mint(emu: Any, *, lifespan_ms: int | None = None) -> str:
    """A personal access token of Ada's that may read its own age (tokens:read), for the tooltip's dates."""
    variables: dict[str, Any] = {"name": f"status bar {secrets.token_hex(2)}", "scopes": [*PAT_SCOPES, "tokens:read"]}
    if lifespan_ms is not None:
        variables["lifespan"] = lifespan_ms
    with http_client() as http:
        answer = http.post(
            f"{emu.url}/graphql",
            json={"query": "mutation($t: ApiTokenCreateInput!) { apiTokenCreate(token: $t) }",
                  "variables": {"t": variables}},
            headers={"Authorization": f"Bearer {emu.credentials['users'][0]['session_token']}"},
        )
    return str(answer.json()["data"]["apiTokenCreate"])


def item(session: Any) -> Any:
    return session.page.locator(ITEM)


def signed_in_text(session: Any, name: str) -> re.Pattern[str]:
    return re.compile(rf"^(\u26a0 )?Speckle: {re.escape(name)} on .+")


def sign_in_with_token(session: Any, token: str, cell: int = 0) -> PanelUI:
    session.ui.run_cell(cell)
    panel = PanelUI(session.ui, cell)
    panel.wait_shown()
    panel.enter_pat(token)
    panel.expect_signed_in(session.stack.credentials["users"][0]["name"])
    return panel


def open_menu(session: Any) -> Any:
    item(session).click()
    menu = session.page.locator(".snb-status-menu")
    expect(menu).to_be_visible()
    return menu


def shot(session: Any, name: str) -> Path:
    """The item with what is around it, under test-output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"status-{session.stack.frontend}-{name}.png"
    box = item(session).bounding_box()
    viewport = session.page.viewport_size
    top = max(0, box["y"] - 160)
    clip = {"x": 0, "y": top, "width": viewport["width"], "height": min(200, viewport["height"] - top)}
    session.page.screenshot(path=str(path), animations="disabled", clip=clip)
    print(f"screenshot: {path}")
    return path


def test_the_item_follows_token_sign_ins_log_out_a_restart_and_the_kernels_language(open_notebook: Any) -> None:
    session = open_notebook([LOGIN_CELL, "print('speckle' in globals())", LOGIN_CELL])
    ada = session.stack.credentials["users"][0]
    expect(item(session)).to_have_text(SIGNED_OUT)
    shot(session, "not-signed-in")

    # a token sign-in in a panel names the account; the tooltip gives the facts, never the token
    token = mint(session.stack.emulator)
    panel = sign_in_with_token(session, token)
    expect(item(session)).to_have_text(signed_in_text(session, ada["name"]), timeout=10_000)
    title = item(session).get_attribute("title") or ""
    facts = (session.stack.emulator.url, ada["email"], "From a personal access token", "tokens:read", "Token created")
    for fact in facts:
        assert fact in title, (fact, title)
    assert token not in title and token[:10] not in (session.page.content())
    shot(session, "signed-in")

    # Log out from the item's menu
    menu = open_menu(session)
    expect(menu.get_by_text("Log out", exact=True)).to_be_visible()
    shot(session, "menu")
    menu.get_by_text("Log out", exact=True).click()
    expect(item(session)).to_have_text(SIGNED_OUT, timeout=10_000)
    panel.expect_signed_out()  # the panel is a view of the same sign-in
    assert session.ui.run_cell(1).strip() == "False"
    assert token_is_valid(session.stack.emulator, token)  # the person's own token: forgotten here, not revoked

    # a token near its end: the warning, the keyboard alone, axe-core
    sign_in_with_token(session, mint(session.stack.emulator, lifespan_ms=5 * DAY_MS), cell=2)
    expect(item(session)).to_have_text(re.compile(rf"^\u26a0 Speckle: {re.escape(ada['name'])} on "), timeout=10_000)
    expect(item(session)).to_have_class(re.compile("snb-status-warn"))
    title = item(session).get_attribute("title") or ""
    assert "expires in 4 days" in title or "expires in 5 days" in title, title
    assert "personal access token expires in" in (item(session).get_attribute("aria-label") or "")
    shot(session, "expiry-warning")
    item(session).focus()
    session.page.keyboard.press("Enter")
    menu = session.page.locator(".snb-status-menu")
    expect(menu).to_be_visible()
    expect(menu.locator(".lm-Menu-item.lm-mod-active")).to_have_count(1)
    session.page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    session.page.add_script_tag(path=str(AXE))
    violations = session.page.evaluate(
        "async (selector) => (await axe.run(document.querySelector(selector))).violations"
        ".map(v => `${v.id}: ${v.help}`)", ITEM)
    assert violations == [], violations

    # a kernel restart clears it
    session.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    expect(item(session)).to_have_text(SIGNED_OUT, timeout=20_000)
    session.ui.wait_for_kernel()  # as a person would: a kernel changed mid-restart fails in JupyterLab's own code

    # a kernel that is not Python hides it; back to Python shows it again
    spec = session.stack.jupyter.tmp / "data" / "kernels" / "echo"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "support.echo_kernel", "-f", "{connection_file}"],
        "display_name": "Echo", "language": "echo", "env": {"PYTHONPATH": str(TESTS)},
    }))
    change_kernel = "(name) => window.jupyterapp.shell.currentWidget.sessionContext.changeKernel({name})"
    session.page.evaluate(change_kernel, "echo")
    expect(item(session)).to_be_hidden(timeout=30_000)
    session.ui.wait_for_kernel()
    session.page.evaluate(change_kernel, "python3")
    expect(item(session)).to_have_text(SIGNED_OUT, timeout=30_000)

    # Notebook 7.6 throws one of its own at load ("reading 'schema'"), with or without this extension
    errors = [p for p in session.problems if "pageerror" in p and "reading 'schema'" not in p]
    assert not errors, session.diagnostics()


def test_log_in_from_the_menu_then_another_notebook_then_log_out_from_the_palette(open_notebook: Any) -> None:
    """In JupyterLab both notebooks share the page and the item follows the one activated; Notebook 7 opens each
    in its own tab, whose item shows its own kernel."""
    session = open_notebook(["x = 1"])
    ada = session.stack.credentials["users"][0]
    expect(item(session)).to_have_text(SIGNED_OUT)
    open_menu(session).get_by_text("Log in", exact=True).click()
    panel = PanelUI(session.ui, 1)  # the new cell below the active one
    panel.wait_shown()
    source = session.page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets[1].model.sharedModel.getSource()")
    assert "login()" in source, source
    with session.context.expect_page() as new_tab:
        panel.login_button.click()
    speckle_sign_in(new_tab.value, ada["email"], ada["password"], "Authorize")
    panel.expect_signed_in(ada["name"])
    signed_in = signed_in_text(session, ada["name"])
    expect(item(session)).to_have_text(signed_in, timeout=10_000)
    title = item(session).get_attribute("title") or ""
    assert "From Log in with Speckle" in title and "streams:read" in title, title

    other = session.path.with_name(f"other-{secrets.token_hex(3)}.ipynb")
    other.write_text(session.path.read_text())
    if session.stack.frontend == "lab":
        first = session.page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
        session.ui.execute("docmanager:open", {"path": other.name})
        session.page.wait_for_function(
            "(first) => { const w = window.jupyterapp.shell.currentWidget; return w.id !== first"
            " && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle'; }", arg=first, timeout=60_000)
        expect(item(session)).to_have_text(SIGNED_OUT, timeout=10_000)
        session.page.evaluate("(first) => window.jupyterapp.shell.activateById(first)", first)
        expect(item(session)).to_have_text(signed_in, timeout=10_000)
    else:
        url = session.stack.jupyter.notebook_url(other.name, workspace="")
        page = session.context.new_page()
        page.goto(f"{url}{'&' if '?' in url else '?'}token={session.stack.jupyter.token}")
        expect(page.locator(ITEM)).to_have_text(SIGNED_OUT, timeout=60_000)
        expect(item(session)).to_have_text(signed_in)
        session.page.bring_to_front()

    session.ui.execute("apputils:activate-command-palette")
    session.page.keyboard.type("Speckle: Log out")
    expect(session.page.locator(".lm-CommandPalette-item.lm-mod-active")).to_contain_text("Speckle: Log out")
    session.page.keyboard.press("Enter")
    expect(item(session)).to_have_text(SIGNED_OUT, timeout=10_000)
    panel.expect_signed_out()
