"""One renewal per kernel however many tabs show its notebook, and a declined sign-in restarted with one click, in
JupyterLab 4 and Notebook 7 in headless Chromium.

Two tabs of one browser show the same notebook, so the kernel's one login panel has a view in each. When the
token dies in the middle of a cell, Speckle must issue exactly one new pair, and every valid token must be the one
the kernel holds: a second renewal would leave a pair valid that nobody holds, beyond the reach of Log out. With
its link to the extension (the default here) the kernel renews by itself; without it (the kernel cannot find its
server's runtime file, as with a remote kernel) it asks the latest view that said it is shown, and only that view.
That view's answer comes over the comm, which these frontends deliver to a busy kernel only after the cell: the
renewal fails with a message saying what to do, and the pair it brought, arriving late, is revoked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import expect
from support.jupyter_ui import NotebookUI, PanelUI, speckle_sign_in, token_is_valid
from support.processes import poll

# Lab only: the renewal and the restart are the kernel's and the panel module's, the same in Notebook 7, whose panel
# runs through every other browser test (one frontend here keeps CI within its 10 minutes)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("stack", ["lab"], indirect=True)]

LOGIN = "from speckle_nb_auth import login\npanel = login(wait=False)"
# Where no runtime file says where the Jupyter server is, the kernel has no link to the extension.
WITHOUT_LINK = "import os, tempfile\nos.environ['JUPYTER_RUNTIME_DIR'] = tempfile.mkdtemp()\n"
TOKEN_DIES_THEN_A_CALL = (
    "import hashlib, os, httpx\n"
    "from speckle_nb_auth._sessions import parts_of, session_for\n"
    "old = speckle.token_pair.token\n"
    # the token dies on the server while its refresh token lives, as when Speckle rejects it
    "httpx.post(os.environ['SPECKLE_SERVER'] + '/auth/logout', json={'token': old}).raise_for_status()\n"
    "name = speckle.graphql('{ activeUser { name } }')['activeUser']['name']\n"
    "print(name, '|', speckle.token_pair.token != old, '|',\n"
    "      parts_of(session_for(get_ipython())).link is not None, '|',"
    " hashlib.sha256(speckle.token_pair.token.encode()).hexdigest())"
)


def sign_in_with_speckle(session: Any, panel: PanelUI) -> dict[str, Any]:
    ada = session.stack.credentials["users"][0]
    tab = panel.click_login(session.context)
    speckle_sign_in(tab, ada["email"], ada["password"], "Authorize")
    panel.expect_signed_in(ada["name"])
    return dict(ada)


def second_tab(session: Any, refreshes: list[str]) -> NotebookUI:
    """The same notebook in another tab of the same browser (a workspace of its own, as a new tab gets); the
    renewals it asks the extension for go to `refreshes`."""
    jupyter = session.stack.jupyter
    url = jupyter.notebook_url(session.path.name, workspace=f"w{secrets.token_hex(4)}")
    page = session.context.new_page()
    page.on("pageerror", lambda err: session.problems.append(f"pageerror (second tab): {err}"))
    page.on("request", lambda request: refreshes.append(request.url) if "/speckle-auth/refresh" in request.url
            else None)
    page.goto(f"{url}{'&' if '?' in url else '?'}token={jupyter.token}")
    ui = NotebookUI(page, session.stack.frontend)
    ui.wait_for_kernel(timeout=60)
    return ui


def valid_tokens(emu: Any) -> set[str]:
    """The tokens Speckle would accept now (the kernel's, and the web session the sign-in page made)."""
    return {secret for secret in emu.issued_secrets() if token_is_valid(emu, secret)}


@pytest.mark.parametrize("linked", [True, False], ids=["through-the-link", "through-one-view"])
def test_a_dead_token_is_renewed_once_with_the_notebook_in_two_tabs(open_notebook: Any, linked: bool) -> None:
    # without the link the answer cannot reach the busy kernel anyway: a short wait keeps the test short
    unlinked = WITHOUT_LINK + LOGIN + "\npanel.refresh_timeout = 3.0"
    session = open_notebook([LOGIN if linked else unlinked, TOKEN_DIES_THEN_A_CALL])
    emu, ui = session.stack.emulator, session.ui
    ui.run_cell(0)
    first = PanelUI(ui, 0)
    first.wait_shown()
    ada = sign_in_with_speckle(session, first)
    ui.save()  # the second tab shows the panel from the saved output
    from_second: list[str] = []
    other = second_tab(session, from_second)
    PanelUI(other, 0).expect_signed_in(ada["name"])  # a view in the second tab: the latest to say it is shown

    issued, valid = set(emu.issued_secrets()), valid_tokens(emu)
    exchanges = emu.requests_seen("/auth/token")
    browser_refreshes = sum("/speckle-auth/refresh" in line for line in session.problems)
    text = ui.run_cell(1, timeout=90)

    # Speckle issued exactly one new pair: the kernel asked the extension itself, or one view for it
    assert emu.requests_seen("/auth/token") == exchanges + 1, session.diagnostics()
    asked = sum("/speckle-auth/refresh" in line for line in session.problems) - browser_refreshes
    assert asked == (0 if linked else 1), session.diagnostics()
    assert len(from_second) == asked  # the view asked is the latest that said it is shown: the second tab's
    if linked:
        assert text.count("|") == 3, f"{text}\n{session.diagnostics()}"
        name, renewed, has_link, held = (part.strip() for part in text.split("|"))
        assert (name, renewed, has_link) == (ada["name"], "True", "True"), text
        assert len(set(emu.issued_secrets()) - issued) == 2  # its token and its refresh token
        # the only token that became valid is the kernel's, and the dead one stays dead
        now_valid = valid_tokens(emu)
        assert [hashlib.sha256(token.encode()).hexdigest() for token in now_valid - valid] == [held]
        assert len(valid - now_valid) == 1
    else:
        assert "RefreshRejected" in text and "did not answer in time" in text and "log in again" in text, text
        assert any(line.endswith("/speckle-auth/refresh -> 200") for line in session.problems)  # it brought one
        # the answer reached the kernel after the cell: nobody waited for its pair, so it was revoked (its
        # token and its refresh token are gone from Speckle)
        poll(lambda: not set(emu.issued_secrets()) - issued, timeout=30, what="the late pair to be revoked",
             on_timeout=session.diagnostics)
        assert not valid_tokens(emu) - valid
        assert len(valid - valid_tokens(emu)) == 1  # the dead token stays dead
    for page in (session.page, other.page):
        session.ledger.check(page.content(), "a notebook tab", tails=False)


def test_a_declined_sign_in_restarts_with_one_click_and_names_the_account(open_notebook: Any) -> None:
    session = open_notebook([LOGIN])
    ui = session.ui
    ada = session.stack.credentials["users"][0]
    ui.run_cell(0)
    panel = PanelUI(ui, 0)
    panel.wait_shown()

    tab = panel.click_login(session.context)
    speckle_sign_in(tab, ada["email"], ada["password"], "Deny")
    expect(panel.root).to_contain_text(re.compile(r"declined|chose not to give access"), timeout=30_000)
    panel.expect_signed_out()
    expect(panel.login_button).to_be_enabled()

    again = panel.click_login(session.context)  # one click starts a new sign-in
    speckle_sign_in(again, ada["email"], ada["password"], "Authorize")
    panel.expect_signed_in(ada["name"])
    expect(panel.user_email).to_contain_text(ada["email"])  # the account signed in, named in full
    session.ledger.check(session.page.content(), "the notebook page", tails=False)
