"""Two JupyterHub users, two browsers, one Speckle app with one redirect URL (`/hub/user-redirect/...`): each
hub user signs in to Speckle as a different Speckle user and each kernel gets its own user's client; a callback
carrying one hub user's access code never completes a login in the other user's server.

Real JupyterHub, configurable-http-proxy, single-user JupyterLab servers, kernels, Chromium and the emulator.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from support.jupyter_ui import speckle_sign_in
from support.jupyterhub import HubUser, hold_speckle_redirect

pytestmark = pytest.mark.hub

LOGIN_CELL = "from speckle_nb_auth import login\nlogin(wait=False)"  # these tests drive the panel cell by cell
EMAIL_CELL = "print(speckle.user.email)"
EXISTS_CELL = "print('speckle' in globals())"


@pytest.fixture
def people(hub: Any, browser: Any) -> Any:
    users = {name: HubUser(hub, browser, name) for name in ("alice", "bob")}
    yield users
    for user in users.values():
        user.close()


def test_each_hub_user_gets_their_own_speckle_user(hub: Any, people: dict[str, HubUser]) -> None:
    """alice -> Ada, bob -> Grace, through the one user-redirect URL, with both logins pending at once."""
    seeded = hub.emulator.credentials["users"]
    wanted = {"alice": seeded[0], "bob": seeded[1]}
    tabs = {}
    for person in people.values():
        person.open_notebook([LOGIN_CELL, EMAIL_CELL])
    for name, person in people.items():
        person.wait_for_notebook()
        panel = person.start_panel()
        tabs[name] = panel.click_login(person.context)  # both flows pending from here on
        assert tabs[name].url.startswith(hub.emulator.url + "/authn/verify/"), tabs[name].url

    callbacks: dict[str, list[str]] = {name: [] for name in people}
    for name, person in people.items():
        person.context.on("request", lambda request, name=name: callbacks[name].append(request.url)
                          if "speckle-auth/callback" in request.url else None)

    for name in ("bob", "alice"):  # the later login finishes first
        speckle_sign_in(tabs[name], wanted[name]["email"], wanted[name]["password"], "Authorize")
        people[name].panel.expect_signed_in(wanted[name]["name"])  # type: ignore[union-attr]

    for name, person in people.items():
        # the one registered redirect URL, forwarded by the hub to this user's own server
        assert any(url.startswith(hub.redirect_url + "?access_code=") for url in callbacks[name]), callbacks[name]
        assert any(url.startswith(hub.user_url(name, "speckle-auth/callback?")) for url in callbacks[name]), \
            callbacks[name]
        assert person.ui.run_cell(1).strip() == wanted[name]["email"], person.diagnostics()
        expect(person.panel.user_name).to_have_text(wanted[name]["name"])  # type: ignore[union-attr]


def open_panels(people: dict[str, HubUser]) -> tuple[HubUser, HubUser]:
    for person in people.values():
        person.open_notebook([LOGIN_CELL, EMAIL_CELL, EXISTS_CELL])
    for person in people.values():
        person.wait_for_notebook()
        person.start_panel()
    return people["alice"], people["bob"]


def test_a_callback_for_one_user_never_completes_the_others_flow(hub: Any, people: dict[str, HubUser]) -> None:
    """alice's access code, opened in bob's browser, lands on bob's server, which has no login cookie for it and
    refuses without exchanging anything; alice's login stays pending, and the very same code then completes it in
    alice's browser (so bob's visit did not spend it)."""
    alice, bob = open_panels(people)
    assert alice.panel is not None and bob.panel is not None
    ada = hub.emulator.credentials["users"][0]

    tab = alice.panel.click_login(alice.context)
    flow = alice.flow_id()
    callback = hold_speckle_redirect(hub, tab, ada)
    assert alice.flow_status(flow)["status"] == "pending"

    # bob's browser opens alice's callback URL (in a second tab; his notebook stays open): the hub sends it to
    # bob's own server, where no login cookie waits, so nothing is exchanged
    exchanges = hub.emulator.requests_seen("/auth/token")
    bobs_tab = bob.context.new_page()
    answer = bobs_tab.goto(callback)
    assert answer is not None
    assert bobs_tab.url.startswith(hub.user_url("bob", "speckle-auth/")), bobs_tab.url
    assert answer.status == 400, f"bob's server answered alice's callback with HTTP {answer.status}"
    expect(bobs_tab.locator("h1")).to_have_text("No login in progress")
    expect(bobs_tab.locator("body")).not_to_contain_text("Signed in")
    assert hub.emulator.requests_seen("/auth/token") == exchanges, "bob's server exchanged alice's code"
    bobs_tab.close()

    # alice's login is untouched: still pending, and her panel still waiting
    assert alice.flow_status(flow)["status"] == "pending"
    expect(alice.panel.signed_in).to_be_hidden()
    expect(alice.panel.cancel_button).to_be_visible()

    # bob's panel and kernel got nothing
    expect(bob.panel.signed_in).to_be_hidden()
    assert bob.ui.run_cell(2).strip() == "False"

    # the same code, delivered to alice's own browser, completes her login: it was never spent
    tab.goto(callback)
    alice.panel.expect_signed_in(ada["name"])
    assert hub.emulator.requests_seen("/auth/token") == exchanges + 1
    assert alice.ui.run_cell(1).strip() == ada["email"]


def test_a_code_for_one_user_never_signs_in_another_with_a_login_pending(
    hub: Any, people: dict[str, HubUser]
) -> None:
    """Worse case: bob has a login of his own pending when alice's code reaches his server. His server exchanges
    it with bob's verifier, which Speckle refuses (the code belongs to alice's challenge): bob's login fails with
    a message, his kernel never gets Ada's account, and alice's login is still pending and completes with a new
    code for her own challenge."""
    alice, bob = open_panels(people)
    assert alice.panel is not None and bob.panel is not None
    ada, grace = hub.emulator.credentials["users"][:2]

    alices_tab = alice.panel.click_login(alice.context)
    alices_verify_url = alices_tab.url  # Speckle's sign-in page for alice's challenge
    flow = alice.flow_id()
    callback = hold_speckle_redirect(hub, alices_tab, ada)

    bobs_login = bob.panel.click_login(bob.context)  # bob's own login, pending: his server holds his cookie
    bobs_flow = bob.flow_id()
    assert bob.flow_status(bobs_flow)["status"] == "pending"
    try:  # alice's code arrives in bob's browser, at bob's server
        bobs_login.goto(callback, wait_until="commit")
    except PlaywrightError:
        assert bobs_login.is_closed()  # the panel closed the tab before the navigation had settled: see below
    assert bob.flow_status(bobs_flow)["status"] == "failed"
    expect(bob.panel.error).to_be_visible(timeout=15_000)
    # the tab's page said "Login failed"; the panel says it too and closes that tab (no dead end left open)
    if not bobs_login.is_closed():
        bobs_login.wait_for_event("close", timeout=15_000)
    expect(bob.panel.signed_in).to_be_hidden()
    expect(bob.panel.root).not_to_contain_text(ada["name"])
    assert bob.ui.run_cell(2).strip() == "False"

    assert alice.flow_status(flow)["status"] == "pending"
    expect(alice.panel.signed_in).to_be_hidden()
    # Speckle issues a new code for the same challenge; this time the redirect goes its normal way
    alices_tab.goto(alices_verify_url)
    speckle_sign_in(alices_tab, ada["email"], ada["password"], "Authorize")
    alice.panel.expect_signed_in(ada["name"])
    assert alice.ui.run_cell(1).strip() == ada["email"]

    # and bob can still sign in as himself from the same panel
    bobs_login = bob.panel.click_login(bob.context)
    speckle_sign_in(bobs_login, grace["email"], grace["password"], "Authorize")
    bob.panel.expect_signed_in(grace["name"])
    assert bob.ui.run_cell(1).strip() == grace["email"]
