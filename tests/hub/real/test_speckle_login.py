"""A real JupyterHub that logs people in with Speckle (SpeckleAuthenticator), set up only by the admin guide's
`configure(c, ..., login=True)` cell: real Unix users, configurable-http-proxy, JupyterLab, kernels, Chromium and
the emulator, whose registered app sends everyone back to the hub's `oauth_callback`.

Two Speckle users log in to the hub through Speckle's consent page; each one's kernel is signed in as them with
nothing to click, and neither server can read the other's token; a renewal the hub makes after Speckle refused
the token reaches a running kernel; hub logout revokes the token; someone the hub does not allow gets the hub's
own page; and the app secret is nowhere a user can read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import expect
from support.jupyter_ui import PanelUI, screenshot, speckle_sign_in
from support.login_hub import LOGIN_USERS, LoginHub
from support.processes import http_client
from support.service_hub import UnixHubUser, hub_with_unix_users, probe_result

pytestmark = pytest.mark.hub

GET_CLIENT_CELL = "from speckle_nb_auth import get_client\nprint(get_client().user.email)"
SIGNED_IN_CELL = "from speckle_nb_auth import login\nlogin()"
EMAIL_CELL = "print(speckle.graphql('{ activeUser { email } }')['activeUser']['email'])"
TOKEN_CELL = "print(speckle._auth.pair.token)"
PROBE_CELL = "import secret_probe\nsecret_probe.run({out!r})"


@pytest.fixture(scope="module")
def login_hub() -> Iterator[LoginHub]:
    with hub_with_unix_users(LoginHub, LOGIN_USERS, "hub/oauth_callback") as hub:
        yield hub


class Person(UnixHubUser):
    """Someone with a Speckle account who logs in to the hub with it."""

    hub: LoginHub

    def __init__(self, hub: LoginHub, browser: Any, person: str) -> None:
        super().__init__(hub, browser, person)
        self.speckle = next(u for u in hub.emulator.credentials["users"] if u["email"].startswith(f"{person}@"))

    def open_notebook(self, cells: list[str]) -> None:
        """Log in to the hub with Speckle (sign-in and consent on Speckle's pages), on the way to a notebook."""
        target = self.write_notebook(cells)
        self.page.goto(f"{self.hub.url}hub/login?next={quote(target, safe='')}")
        self.page.get_by_text("Sign in with Speckle").click()
        speckle_sign_in(self.page, self.speckle["email"], self.speckle["password"], "Authorize")

    def token_route(self, method: str = "GET", body: dict[str, Any] | None = None, *, of: str | None = None) -> Any:
        """The hub's token route for `of` (this person by default), called with this person's server's token."""
        with http_client(headers={"Authorization": f"token {self.hub.server_token(self.person)}"}) as http:
            return http.request(method, self.hub.token_route(of or self.person), json=body)


@pytest.fixture
def people(login_hub: LoginHub, browser: Any) -> Iterator[dict[str, Person]]:
    users = {person: Person(login_hub, browser, person) for person in LOGIN_USERS}
    yield users
    for user in users.values():
        user.close()


def speckle_accepts(hub: LoginHub, token: str) -> bool:
    reply = httpx.post(f"{hub.emulator.url}/graphql", json={"query": "{ activeUser { id } }"},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return reply.status_code == 200 and bool((reply.json().get("data") or {}).get("activeUser"))


def test_two_people_log_in_with_speckle_and_their_kernels_are_signed_in(
    login_hub: LoginHub, people: dict[str, Person]
) -> None:
    hub = login_hub
    for person in people.values():
        person.open_notebook([GET_CLIENT_CELL, SIGNED_IN_CELL, EMAIL_CELL, TOKEN_CELL])
    for person in people.values():
        person.wait_for_notebook()
        # get_client() and login() sign in at once as the hub user's Speckle account: nothing to click or paste
        assert person.ui.run_cell(0, timeout=60).strip() == person.speckle["email"], person.diagnostics()
        person.ui.run_cell(1, timeout=60)
        person.panel = PanelUI(person.ui, 1)
        person.panel.expect_signed_in(person.speckle["name"])
        expect(person.panel.status).to_contain_text("Signed in with your hub login's Speckle account.")
        expect(person.panel.root.locator(".snb-remember-row")).to_be_hidden()  # the hub's to keep, not the keyring's
        assert person.ui.run_cell(2).strip() == person.speckle["email"], person.diagnostics()
    ada, grace = people["ada"], people["grace"]
    assert ada.panel is not None
    screenshot(ada.panel, "hub-speckle-login-signed-in.png")

    # each server reads its own user's token, and is refused the other's
    mine = ada.token_route()
    assert mine.status_code == 200 and mine.headers["cache-control"] == "no-store"
    assert set(mine.json()) == {"server_url", "token"} and mine.json()["server_url"] == hub.emulator.url
    graces = grace.token_route().json()["token"]
    assert mine.json()["token"] != graces
    for asking, other, theirs in ((ada, "grace", graces), (grace, "ada", mine.json()["token"])):
        refused = asking.token_route(of=other)
        assert refused.status_code == 404 and theirs not in refused.text  # JupyterHub hides even who exists
        refused = asking.token_route("POST", {"refused": hashlib.sha256(theirs.encode()).hexdigest()}, of=other)
        assert refused.status_code == 404 and theirs not in refused.text

    # Speckle refuses ada's token; the hub renews it (asked here by her server, as another kernel of hers would),
    # and the kernel that still holds the refused one works at its next call
    held = ada.ui.run_cell(3).strip()
    assert held == mine.json()["token"] and speckle_accepts(hub, held)
    assert httpx.post(f"{hub.emulator.url}/auth/logout", json={"token": held}, timeout=10).status_code == 200
    assert not speckle_accepts(hub, held)
    refused = hashlib.sha256(held.encode()).hexdigest()
    renewed = ada.token_route("POST", {"refused": refused}).json()["token"]
    assert renewed != held and speckle_accepts(hub, renewed)
    assert ada.ui.run_cell(2).strip() == ada.speckle["email"]
    assert ada.ui.run_cell(3).strip() == renewed
    assert speckle_accepts(hub, grace.token_route().json()["token"])  # grace's sign-in untouched

    # hub logout ends ada's sign-in on Speckle too
    ada.page.goto(f"{hub.url}hub/logout")
    expect(ada.page.get_by_text("Sign in with Speckle")).to_be_visible()
    assert not speckle_accepts(hub, renewed)
    assert ada.token_route().status_code == 404
    log = hub.log_path.read_text()
    for secret in (held, renewed, hub.secret):
        assert secret not in log, "a secret in the hub's log"


def test_someone_the_hub_does_not_allow_gets_the_hubs_own_page(login_hub: LoginHub, browser: Any) -> None:
    """alan@example.org is a Speckle user, but the guide's hub allows the domain example.com only; and a person
    who denies on Speckle's page is told what happened."""
    alan = next(u for u in login_hub.emulator.credentials["users"] if u["email"] == "alan@example.org")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{login_hub.url}hub/oauth_login")
        speckle_sign_in(page, alan["email"], alan["password"], "Deny")  # first he says no on Speckle's page
        expect(page.locator("body")).to_contain_text("You did not allow the hub to use your Speckle account")
        page.goto(f"{login_hub.url}hub/oauth_login")
        speckle_sign_in(page, alan["email"], alan["password"], "Authorize")
        expect(page.locator("body")).to_contain_text("not currently authorized to use this hub")
        assert page.url.startswith(f"{login_hub.url}hub/oauth_callback")
    finally:
        context.close()


def test_the_secret_is_nowhere_a_user_can_read(login_hub: LoginHub, people: dict[str, Person]) -> None:
    hub = login_hub
    grace = people["grace"]
    out = str(hub.home("grace") / "probe.json")
    grace.open_notebook([PROBE_CELL.format(out=out)])
    grace.wait_for_notebook()
    grace.ui.run_cell(0, timeout=120)
    found = probe_result(hub, "grace", "probe.json")
    assert any(hub.server_token("grace") in text for text in found["/proc/*/environ"].values())
    assert hub.secret not in json.dumps(found), "the app secret is readable by a user"
