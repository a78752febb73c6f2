""""Log in with Speckle" with nothing set up anywhere: no app registered, no app secret, in JupyterLab 4 and
Notebook 7 in headless Chromium. Speckle's public connector app sends the browser to a loopback address, where
the server extension listens (or, with the extension disabled, the kernel); where nothing can listen, the person
pastes the address the sign-in tab ended on. The emulator's connector app redirects to a free local port."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from playwright.sync_api import expect
from support.jupyter_server import JupyterServer
from support.jupyter_ui import PanelUI, Stack, screenshot, speckle_sign_in
from support.processes import free_loopback_port, free_port, poll

pytestmark = pytest.mark.browser

LOGIN = "from speckle_nb_auth import login\nlogin(wait=False)"


# the extension's path and the kernel's (the same panel code, no server part: what VS Code gives a kernel), one
# in each frontend: the panel is one ES module in both, and the other tests run every panel test in both
@pytest.fixture(scope="module", params=[("lab", "extension"), ("notebook", "kernel")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from speckle_nb_auth.emulator import Emulator

    frontend, mode = request.param
    tmp = tmp_path_factory.mktemp(f"public-{frontend}-{mode}")
    connector = f"http://localhost:{free_loopback_port()}"
    with Emulator(host="127.0.0.1", port=0, connector_redirect_url=connector) as emu:
        if mode == "kernel":  # the extension is installed but off: nothing of ours runs in the server
            (tmp / "config").mkdir(parents=True, exist_ok=True)
            (tmp / "config" / "jupyter_server_config.json").write_text(
                json.dumps({"ServerApp": {"jpserver_extensions": {"speckle_nb_auth": False}}}))
        server = JupyterServer(frontend, root_dir=tmp / "root", tmp=tmp, extra_env={"SPECKLE_SERVER": emu.url},
                               port=free_port())
        server.start()
        try:
            made = Stack(frontend, emu, server)
            made.mode = mode  # type: ignore[attr-defined]
            yield made
        finally:
            server.stop()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def open_panel(open_notebook: Any, cells: list[str]) -> tuple[Any, PanelUI]:
    session = open_notebook(cells)
    session.ui.run_cell(0)
    panel = PanelUI(session.ui, 0)
    expect(panel.root).to_be_visible()
    expect(panel.login_button).to_be_enabled()
    return session, panel


def test_log_in_with_speckle_needs_no_set_up(open_notebook: Any) -> None:
    session, panel = open_panel(open_notebook, [LOGIN, "print(speckle.user.name)"])
    stack, ui = session.stack, session.ui
    ada = stack.credentials["users"][0]
    if stack.mode == "extension":
        expect(panel.root.locator(".snb-appnote")).to_contain_text("connector app")
    else:
        expect(panel.root.locator(".snb-noext")).to_contain_text("this kernel signs you in")
    screenshot(panel, f"{stack.frontend}-{stack.mode}-public-ready.png")

    # Cancel closes the loopback listener at once (it used to stay bound for the login's 10 minutes)
    port = int(stack.emulator.credentials["connector_redirect_url"].rsplit(":", 1)[1])
    first = panel.click_login(session.context)
    poll(lambda: listening(port), timeout=15, what="the listener of the first login")
    expect(panel.root.locator(".snb-other-machine")).to_be_visible()  # paste-back only when asked for
    screenshot(panel, f"{stack.frontend}-{stack.mode}-public-waiting.png")
    panel.cancel_button.click()
    poll(lambda: not listening(port), timeout=15, what="the listener closed by Cancel")
    first.close()

    tab = panel.click_login(session.context)
    expect(tab.locator("input[name=email]")).to_be_visible(timeout=15_000)  # (kernel: once it named the address)
    assert tab.evaluate("() => window.opener") is None
    assert tab.url.startswith(stack.emulator.url + "/authn/verify/sca/"), tab.url
    speckle_sign_in(tab, ada["email"], ada["password"], decision=None)  # the connector app: no consent page
    expect(tab.locator("body")).to_contain_text("notebook", timeout=15_000)  # the receiver's page: go back
    panel.expect_signed_in(ada["name"])
    expect(panel.status).to_contain_text("connector app")  # which app signed in, and what it can do
    assert ui.run_cell(1).strip() == ada["name"]
    # the status bar's item hears it from the kernel: it needs no server extension either (the kernel stack)
    status = session.page.locator("#speckle-nb-auth-status")
    expect(status).to_have_text(re.compile(rf"Speckle: {re.escape(ada['name'])} on "), timeout=10_000)
    assert "From Log in with Speckle" in (status.get_attribute("title") or "")
    session.ledger.check(session.page.content(), "the notebook page", tails=False)
    screenshot(panel, f"{stack.frontend}-{stack.mode}-public-signed-in.png")


def test_paste_back_where_the_answer_cannot_come_back(open_notebook: Any) -> None:
    """The connector port is taken (Speckle's desktop service, say): the sign-in tab ends on a page that cannot
    be reached, and the person copies its address into the panel."""
    session, panel = open_panel(open_notebook, [LOGIN, "print(speckle.user.name)"])
    stack, ui = session.stack, session.ui
    grace = stack.credentials["users"][1]
    port = int(stack.credentials["connector_redirect_url"].rsplit(":", 1)[1])
    with ExitStack() as held:
        for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            squatter = held.enter_context(socket.socket(family))
            try:
                squatter.bind((address, port))  # bound, not listening: the browser's connection is refused
            except OSError:
                pass  # no IPv6 here
        tab = panel.click_login(session.context)
        expect(tab.locator("input[name=email]")).to_be_visible(timeout=15_000)
        # the address the tab's address bar shows on its "can't be reached" page
        with tab.expect_request(lambda r: r.url.startswith(f"http://localhost:{port}"), timeout=15_000) as sent:
            speckle_sign_in(tab, grace["email"], grace["password"], decision=None)
        address = sent.value.url
        paste = panel.root.locator(".snb-paste-input")
        expect(paste).to_be_visible()
        screenshot(panel, f"{stack.frontend}-{stack.mode}-paste-asked.png")
        paste.fill(address)
        paste.press("Enter")
        panel.expect_signed_in(grace["name"])
    assert ui.run_cell(1).strip() == grace["name"]
    session.ledger.check(session.page.content(), "the notebook page", tails=False)


def test_run_all_waits_for_log_in_with_speckle(open_notebook: Any) -> None:
    """Run All with `login()` waiting: with the extension the kernel hears the panel; without it the kernel has
    started its own sign-in before it waits, and the panel's button opens its address. Either way the next
    cell runs once the person has signed in."""
    session = open_notebook(["from speckle_nb_auth import login\nlogin()", "print(speckle.user.name)"])
    stack, ui = session.stack, session.ui
    ada = stack.credentials["users"][0]
    session.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return null; }")
    panel = PanelUI(ui, 0)
    expect(panel.root).to_be_visible(timeout=30_000)
    expect(panel.login_button).to_be_enabled(timeout=30_000)
    if stack.mode == "kernel":
        expect(panel.status).to_contain_text(
            "login() waits in this cell: to stop it, or to use a personal access token instead, interrupt the "
            "kernel (Kernel \u2192 Interrupt)")
        expect(panel.blocked_link).to_have_attribute("href", re.compile("/authn/verify/sca/"))
        expect(panel.cancel_button).to_be_hidden()  # a busy kernel would hear it only after the cell
        screenshot(panel, f"{stack.frontend}-kernel-run-all-waiting.png")
    assert ui.cell_state(1)["text"] == ""  # the next cell waits behind login()
    tab = panel.click_login(session.context)
    assert tab.evaluate("() => window.opener") is None
    speckle_sign_in(tab, ada["email"], ada["password"], decision=None)
    expect(tab.locator("body")).to_contain_text("notebook", timeout=15_000)
    panel.expect_signed_in(ada["name"])
    ui.wait_for_output(1, ada["name"])
    screenshot(panel, f"{stack.frontend}-{stack.mode}-run-all-signed-in.png")
    session.ledger.check(session.page.content(), "the notebook page", tails=False)
