"""A notebook as people run it, in JupyterLab 4 and Notebook 7 in headless Chromium: Run All with `login()`
waiting for the sign-in, the keyboard alone, two panels that agree, a panel whose kernel restarted, and the
messages a person meets. Screenshots of each state go to test-output/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from support.jupyter_ui import PanelUI, mint_pat, screenshot, speckle_sign_in
from support.processes import free_port

pytestmark = pytest.mark.browser

WAITING_LOGIN = "from speckle_nb_auth import login\nlogin()"
NAME_CELL = "print(speckle.user.name)"


def run_all(session: Any) -> None:
    """Run All, as the menu does; not awaited (it resolves only once every cell ran, after the sign-in)."""
    session.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return null; }")


def output_text(session: Any, index: int) -> str:
    return str(session.ui.cell_state(index)["text"])


def focused_class(session: Any) -> str:
    return str(session.page.evaluate("() => document.activeElement?.className || ''"))


def expect_focus(session: Any, class_name: str) -> None:
    """The keyboard's focus lands on the element of `class_name` (within a few seconds: it follows an update)."""
    try:
        session.page.wait_for_function("(c) => document.activeElement?.classList.contains(c)", arg=class_name,
                                       timeout=5_000, polling=50)
    except Exception:
        raise AssertionError(f"the focus is on {focused_class(session)!r}, not on .{class_name}") from None


def test_run_all_waits_for_the_sign_in(open_notebook: Any) -> None:
    """Run All: `login()` shows the panel and holds the next cell until the person has signed in."""
    session = open_notebook([WAITING_LOGIN, NAME_CELL])
    stack, ui = session.stack, session.ui
    ada = stack.credentials["users"][0]
    run_all(session)
    panel = PanelUI(ui, 0)
    panel.wait_shown()
    expect(panel.status).to_contain_text("The next cells run once you have signed in (login() waits until")
    assert output_text(session, 1) == ""  # the next cell has not run: it waits behind login()
    screenshot(panel, f"{stack.frontend}-run-all-waiting.png")

    tab = panel.click_login(session.context)
    expect(panel.cancel_button).to_be_visible()
    expect_focus(session, "snb-cancel")
    expect(panel.root.locator(".snb-left")).to_have_text(re.compile(r"^\d+:\d\d left$"))
    assert panel.status.inner_text().count("Waiting for you to sign in") == 1  # said once
    screenshot(panel, f"{stack.frontend}-run-all-tab-open.png")
    speckle_sign_in(tab, ada["email"], ada["password"], "Authorize")

    panel.expect_signed_in(ada["name"])
    ui.wait_for_output(1, ada["name"])
    assert ada["name"] in output_text(session, 1)
    # (the keyboard's place after a sign-in is tested below: once Run All ends, the frontend focuses the notebook)
    screenshot(panel, f"{stack.frontend}-run-all-signed-in.png")
    session.ledger.check(session.page.content(), "the notebook page", tails=False)


def test_a_token_by_keyboard_alone_and_two_panels_agree(open_notebook: Any) -> None:
    """Enter in the token field signs in (JupyterLab too); a second panel of the kernel shows the same sign-in,
    and logging out in one logs both out."""
    session = open_notebook(["from speckle_nb_auth import login\nlogin(wait=False)",
                             "login(wait=False, name='sp')"])
    stack, ui = session.stack, session.ui
    ui.run_cell(0)
    first = PanelUI(ui, 0)
    first.wait_shown()
    ui.run_cell(1)
    second = PanelUI(ui, 1)
    second.wait_shown()

    first.pat_box.locator("summary").focus()
    session.page.keyboard.press("Enter")  # opens "Use a personal access token"
    session.page.keyboard.press("Tab")
    assert focused_class(session) == "snb-pat-input"
    session.page.keyboard.type(mint_pat(stack.emulator))
    session.page.keyboard.press("Enter")
    ada = stack.credentials["users"][0]["name"]
    first.expect_signed_in(ada)
    second.expect_signed_in(ada)  # one sign-in per kernel: every panel shows it
    expect_focus(session, "snb-logout")

    first.logout_button.focus()
    session.page.keyboard.press("Enter")
    first.expect_signed_out()
    second.expect_signed_out()


def test_a_panel_whose_kernel_restarted_says_so(open_notebook: Any) -> None:
    session = open_notebook(["from speckle_nb_auth import login\nlogin(wait=False)"])
    stack, ui = session.stack, session.ui
    ui.run_cell(0)
    panel = PanelUI(ui, 0)
    panel.wait_shown()
    panel.enter_pat(mint_pat(stack.emulator))
    panel.expect_signed_in(stack.credentials["users"][0]["name"])

    session.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.restart()")
    expect(panel.error).to_contain_text("kernel restarted or stopped", timeout=30_000)
    expect(panel.error).to_contain_text("run its cell again")
    expect(panel.logout_button).to_be_hidden()  # nothing live-looking is left to press
    screenshot(panel, f"{stack.frontend}-stale-after-restart.png")


def test_messages_say_what_happened_and_what_to_do(open_notebook: Any) -> None:
    session = open_notebook(["from speckle_nb_auth import login\nlogin(wait=False)"])
    stack, ui = session.stack, session.ui
    emu = stack.emulator
    ui.run_cell(0)
    panel = PanelUI(ui, 0)
    panel.wait_shown()

    panel.enter_pat("notatoken")
    expect(panel.error).to_contain_text("not a Speckle token")

    panel.enter_pat("0" * 42)  # Speckle's shape, but no token of this server
    expect(panel.error).to_contain_text(f"not accepted by {emu.url}")
    link = panel.error.locator(f'a[href="{emu.url}/settings"]')
    expect(link).to_have_text(f"{emu.url}/settings")  # a link, to the server's token page
    screenshot(panel, f"{stack.frontend}-token-not-accepted.png")

    make = panel.root.locator(".snb-make-token")
    expect(make).to_have_attribute("href", f"{emu.url}/settings")

    # a server set up nowhere: the extension signs in to it through Speckle's public connector app
    panel.root.locator(".snb-server").fill("speckle.example.org")
    expect(panel.error).to_be_hidden()  # the token's error named the server before: not this one
    expect(panel.root.locator(".snb-nooauth")).to_be_hidden()
    expect(panel.root.locator(".snb-appnote")).to_contain_text("connector app")
    expect(panel.login_button).to_be_enabled()
    screenshot(panel, f"{stack.frontend}-any-server.png")

    # a wrong port: the panel names it, and the tab that said so too closes (no dead end left open)
    wrong = f"http://127.0.0.1:{free_port()}"
    panel.root.locator(".snb-server").fill(wrong)
    with session.context.expect_page() as opened:  # not click_login: this tab may close before it loads
        panel.login_button.click()
    tab = opened.value
    expect(panel.error).to_contain_text(f"Nothing answers at {wrong}: is the address right (a typo)?")
    if not tab.is_closed():  # sync Playwright delivers events only inside its calls: no race with the check
        tab.wait_for_event("close", timeout=10_000)
    screenshot(panel, f"{stack.frontend}-nothing-answers.png")
