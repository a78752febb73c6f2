"""The login panel as people use it: headless Chromium, a real Jupyter server (JupyterLab 4 and Notebook 7), a
real kernel, the server extension, and the emulator as the Speckle server. Nothing is mocked.

Each test runs once per frontend (the `stack` fixture's parameter). The popup blocker is on (Playwright's
`--disable-popup-blocking` is removed), so a tab that opens passed Chromium's real blocker.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.jupyter_ui import (
    LOGIN_BUTTON,
    PanelUI,
    assert_no_secret,
    mint_pat,
    screenshot,
    speckle_sign_in,
    token_is_valid,
)

pytestmark = pytest.mark.browser

LOGIN_CELL = "from speckle_nb_auth import login\nlogin(wait=False)"  # these tests drive the panel cell by cell
NAME_CELL = "print(speckle.user.name)"
EMAIL_CELL = "print(speckle.user.email)"
EXISTS_CELL = "print('speckle' in globals())"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def start_panel(session: Any) -> PanelUI:
    """Run the `login()` cell (cell 0) and wait until its panel is ready."""
    session.ui.run_cell(0)
    panel = PanelUI(session.ui, 0)
    try:
        panel.wait_shown()
    except AssertionError as err:
        raise AssertionError(f"{err}\n{session.diagnostics()}") from None
    expect(panel.signed_in).to_be_hidden()
    return panel


def oauth_sign_in(session: Any, panel: PanelUI, user: dict[str, str]) -> Any:
    """Log in with Speckle through the new tab as `user`; the tab."""
    tab = panel.click_login(session.context)
    speckle_sign_in(tab, user["email"], user["password"], "Authorize")
    return tab


def saved_notebook(session: Any) -> tuple[str, dict[str, Any]]:
    session.ui.save()
    raw = Path(session.path).read_text()
    return raw, json.loads(raw)


def panel_models(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    """The saved state of every login panel model in the notebook's widget state."""
    state = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return [model["state"] for model in state.values()
            if model.get("model_name") == "AnyModel" and "user_name" in model.get("state", {})]


def page_secrets_check(session: Any, secret_values: list[str], *, tails: bool = True) -> None:
    """No token in the page: neither in its HTML nor in the value of any input."""
    html = session.page.content()
    values = session.page.evaluate("() => [...document.querySelectorAll('input, textarea')].map((e) => e.value)")
    assert_no_secret(html + "\n" + "\n".join(values), secret_values, "the notebook page", tails=tails)


def assert_popup_blocker_is_on(context: Any) -> None:
    """Control for the popup test: in this browser a second `window.open` within one user gesture (the first
    consumed it) is blocked, so the blocker the login tab got past is really on."""
    page = context.new_page()
    try:
        opened = page.evaluate(
            """() => {
                const first = window.open('about:blank', '_blank');
                const second = window.open('about:blank', '_blank');
                const result = [first !== null, second === null];
                if (first) first.close();
                if (second) second.close();
                return result;
            }"""
        )
    finally:
        page.close()
    assert opened == [True, True], f"Chromium's popup blocker is not active (first opened, second blocked: {opened})"


# --- tests ------------------------------------------------------------------------------------------------------


def test_log_in_with_speckle_in_a_new_tab(open_notebook: Any) -> None:
    """The whole OAuth flow as a person does it: the sign-in tab opens past the popup blocker without a way back
    to the notebook, the panel turns signed in, the next cell uses `speckle`, the saved notebook keeps the
    widget state but no token; screenshots in the light and the dark theme."""
    session = open_notebook([LOGIN_CELL, NAME_CELL])
    stack, ui = session.stack, session.ui
    ada = stack.credentials["users"][0]
    panel = start_panel(session)
    assert_popup_blocker_is_on(session.context)

    tab = panel.click_login(session.context)  # fails if the popup blocker stopped the tab
    assert tab.evaluate("() => window.opener") is None, "the Speckle tab can reach back into the notebook tab"
    assert tab.url.startswith(stack.emulator.url + "/authn/verify/"), tab.url
    # not the "your browser blocked the tab" fallback; the page stays one click away, to reopen a closed tab
    expect(panel.blocked_link).to_have_text("Open the Speckle sign-in page again")
    expect(panel.status).not_to_contain_text("blocked")
    expect(panel.cancel_button).to_be_visible()  # waiting, and it can be cancelled
    speckle_sign_in(tab, ada["email"], ada["password"], "Authorize")

    panel.expect_signed_in(ada["name"])
    expect(panel.user_email).to_contain_text(ada["email"])
    expect(panel.error).to_be_hidden()
    if not tab.is_closed():  # the result page closes itself after a success
        tab.wait_for_event("close", timeout=15_000)

    assert ui.run_cell(1).strip() == ada["name"]
    expect(ui.cell(1).locator(".jp-OutputArea-output")).to_have_text(re.compile(re.escape(ada["name"])))

    raw, notebook = saved_notebook(session)
    session.ledger.check(raw, "the saved notebook")
    models = panel_models(notebook)
    assert models, "the saved notebook holds no login panel widget state"
    assert models[0]["status"] == "signed_in" and models[0]["user_name"] == ada["name"]
    session.ledger.check(stack.jupyter.log_text(), "the Jupyter server's log", tails=False)
    page_secrets_check(session, sorted(session.ledger.snapshot()), tails=False)

    light = screenshot(panel, f"{stack.frontend}-signed-in-light.png")
    try:
        ui.set_theme("JupyterLab Dark")
        panel.expect_signed_in(ada["name"])
        dark = screenshot(panel, f"{stack.frontend}-signed-in-dark.png")
    finally:
        ui.set_theme("JupyterLab Light")
    assert light.stat().st_size > 1000 and dark.stat().st_size > 1000


def test_deny_on_the_consent_page_then_log_in_again(open_notebook: Any) -> None:
    """Deny -> the panel says access was not given, injects nothing, and Log in with Speckle works again."""
    session = open_notebook([LOGIN_CELL, EXISTS_CELL, EMAIL_CELL])
    stack, ui = session.stack, session.ui
    ada = stack.credentials["users"][0]
    panel = start_panel(session)

    tab = panel.click_login(session.context)
    speckle_sign_in(tab, ada["email"], ada["password"], "Deny")
    expect(tab.locator("h1")).to_have_text("Login cancelled")  # the result page in the tab says so too
    expect(panel.error).to_be_visible(timeout=15_000)
    expect(panel.error).to_have_text(re.compile(r"denied|declined", re.I))
    expect(panel.signed_in).to_be_hidden()
    assert ui.run_cell(1).strip() == "False"
    tab.close()

    expect(panel.login_button).to_be_enabled()
    tab = panel.click_login(session.context)  # the same panel starts a new sign-in
    speckle_sign_in(tab, ada["email"], ada["password"], "Authorize")
    panel.expect_signed_in(ada["name"])
    expect(panel.error).to_be_hidden()
    assert ui.run_cell(2).strip() == ada["email"]


def test_personal_access_token(open_notebook: Any) -> None:
    """A wrong token gives a clear message and shows no token; the right one signs in; nothing is saved."""
    session = open_notebook([LOGIN_CELL, EMAIL_CELL, EXISTS_CELL])
    stack, ui = session.stack, session.ui
    grace = stack.credentials["users"][1]
    good = mint_pat(stack.emulator, user=1)
    wrong = secrets.token_hex(21)  # shaped like a Speckle token, unknown to the server
    panel = start_panel(session)

    panel.enter_pat(wrong)
    expect(panel.error).to_be_visible(timeout=20_000)
    expect(panel.error).to_have_text(re.compile(r"token", re.I))
    expect(panel.error).to_have_text(re.compile(r"revoked|expired|recogni[sz]e|invalid|not valid", re.I))
    expect(panel.signed_in).to_be_hidden()
    expect(panel.pat_input).to_have_value("")
    page_secrets_check(session, [wrong, good])
    assert ui.run_cell(2).strip() == "False"

    panel.enter_pat(good)
    panel.expect_signed_in(grace["name"])
    expect(panel.error).to_be_hidden()
    expect(panel.pat_input).to_have_value("")
    page_secrets_check(session, [wrong, good])
    assert ui.run_cell(1).strip() == grace["email"]

    raw, notebook = saved_notebook(session)
    session.ledger.check(raw, "the saved notebook")
    session.ledger.check(stack.jupyter.log_text(), "the Jupyter server's log", tails=False)
    for value in (good, wrong):
        assert value not in raw and value[-8:] not in raw
    models = panel_models(notebook)
    assert models and models[0]["user_name"] == grace["name"]


def test_log_out(open_notebook: Any) -> None:
    """Log out -> the panel is signed out and `speckle` is gone; a pasted token stays valid (it may be what the
    person's CI uses) until "Also revoke it on Speckle" is pressed."""
    session = open_notebook([LOGIN_CELL, NAME_CELL, EXISTS_CELL])
    stack, ui = session.stack, session.ui
    ada = stack.credentials["users"][0]
    token = mint_pat(stack.emulator, user=0)
    panel = start_panel(session)

    panel.enter_pat(token)
    panel.expect_signed_in(ada["name"])
    assert ui.run_cell(2).strip() == "True"

    panel.logout_button.click()
    panel.expect_signed_out()
    expect(panel.user_name).to_have_text("")
    expect(panel.error).to_be_hidden()
    assert ui.run_cell(2).strip() == "False"
    assert token_is_valid(stack.emulator, token), "Log out revoked a token the person brought"
    also = panel.root.get_by_role("button", name="Also revoke it on Speckle")
    expect(also).to_be_visible()
    expect(panel.status).to_contain_text("was not revoked")
    screenshot(panel, f"{stack.frontend}-logged-out-token-kept.png")
    also.click()
    expect(panel.status).to_contain_text("no longer works anywhere")
    expect(also).to_be_hidden()
    assert not token_is_valid(stack.emulator, token), "Also revoke did not revoke the token on the server"
    expect(panel.root.get_by_role("button", name=LOGIN_BUTTON)).to_be_enabled()
