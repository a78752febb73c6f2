"""The hub's Speckle login service on a real JupyterHub set up only by the admin guide's `configure(...)` cell:
real Unix users (LocalProcessSpawner), configurable-http-proxy, JupyterLab, kernels, Chromium and the emulator.

Two users sign in as different Speckle users through the service; a callback of one opened in the other's
browser completes nothing; one user's server cannot claim, exchange or refresh for the other; and the app secret
is nowhere a user can read from their kernel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import expect
from support.jupyter_ui import speckle_sign_in
from support.jupyterhub import hold_speckle_redirect
from support.processes import LOOPBACK, http_client, poll
from support.service_hub import USERS, ServiceHub, UnixHubUser, hub_with_unix_users, probe_result

pytestmark = pytest.mark.hub

LOGIN_CELL = "from speckle_nb_auth import login\nlogin(wait=False)"
EMAIL_CELL = "print(speckle.user.email)"
EXISTS_CELL = "print('speckle' in globals())"
PROBE_CELL = "import secret_probe\nsecret_probe.run({out!r})"
RENEW_CELL = (  # the token stops working (logged out, as an expired one) while the cell runs: the client renews it
    "import httpx\nhttpx.post(speckle.server.url + '/auth/logout', json={'token': speckle._auth.pair.token})\n"
    "print(speckle.graphql('{ activeUser { email } }')['activeUser']['email'])"
)
REFRESH_TOKEN_CELL = (  # leaves the kernel's refresh token where only this user and root can read it
    "import os, pathlib\np = pathlib.Path({out!r})\np.write_text(speckle._auth.pair.refresh_token)\n"
    "os.chmod(p, 0o600)"
)


@pytest.fixture(scope="module")
def service_hub() -> Iterator[ServiceHub]:
    with hub_with_unix_users(ServiceHub, USERS, "services/speckle-auth/callback") as hub:
        yield hub


class Person(UnixHubUser):
    """A hub user who logs in to the hub with a password (DummyAuthenticator)."""

    def open_notebook(self, cells: list[str]) -> None:
        target = self.write_notebook(cells)
        self.page.goto(f"{self.hub.url}hub/login?next={quote(target, safe='')}")
        self.page.locator("#username_input").fill(self.user)
        self.page.locator("#password_input").fill(self.hub.password)
        self.page.locator("#login_submit").click()

    def relay(self, method: str, path: str, body: dict[str, Any] | None = None, *, as_person: str | None = None,
              direct: bool = False) -> Any:
        """Call this person's server's speckle-auth route (or the service itself, `direct`) with the server's
        JupyterHub API token, or with `as_person`'s: what a kernel of theirs can do."""
        token = self.hub.server_token(as_person or self.person)
        base = self.hub.service_url if direct else self.hub.user_url(as_person or self.person, "speckle-auth/")
        with http_client(headers={"Authorization": f"token {token}"}) as http:
            return http.request(method, base + path, json=body)


@pytest.fixture
def people(service_hub: ServiceHub, browser: Any) -> Iterator[dict[str, Person]]:
    users = {person: Person(service_hub, browser, person) for person in USERS}
    yield users
    for user in users.values():
        user.close()


def open_panels(people: dict[str, Person], cells: list[str]) -> tuple[Person, Person]:
    for person in people.values():
        person.open_notebook(cells)
    for person in people.values():
        person.wait_for_notebook()
        person.start_panel()
    return people["alice"], people["bob"]


def test_two_users_sign_in_through_the_service_and_cannot_act_for_each_other(
    service_hub: ServiceHub, people: dict[str, Person]
) -> None:
    hub = service_hub
    ada, grace = hub.emulator.credentials["users"][:2]
    alice, bob = open_panels(people, [LOGIN_CELL, EMAIL_CELL, EXISTS_CELL, "", ""])
    assert alice.panel is not None and bob.panel is not None

    # alice starts a login; Speckle's redirect (the one registered URL, with her code) is held
    tab = alice.panel.click_login(alice.context)
    assert alice.login_requests[-1].startswith(hub.url + "services/speckle-auth/login?"), alice.login_requests
    flow = alice.flow_id()
    callback = hold_speckle_redirect(hub, tab, ada)
    assert alice.flow_status(flow)["status"] == "pending"  # through her server's relay
    exchanges = hub.emulator.requests_seen("/auth/token")

    # bob's server (his kernel's token), directly at the service or through his server, sees no such login and
    # cannot spend alice's code with it
    for direct in (False, True):
        assert bob.relay("GET", f"flows/{flow}", direct=direct).status_code == 404
        assert bob.relay("POST", f"flows/{flow}/claim", {}, direct=direct).status_code == 404
        assert bob.relay("POST", f"flows/{flow}/code", {"pasted": callback}, direct=direct).status_code == 404
    assert hub.emulator.requests_seen("/auth/token") == exchanges

    # alice's callback opened in bob's browser: the service knows him there, finds no login of his, exchanges
    # nothing
    bobs_tab = bob.context.new_page()
    answer = bobs_tab.goto(callback)
    assert answer is not None and answer.status == 400, answer and answer.status
    assert bobs_tab.url.startswith(hub.url + "services/speckle-auth/result"), bobs_tab.url
    expect(bobs_tab.locator("h1")).to_have_text("No login in progress")
    bobs_tab.close()
    assert hub.emulator.requests_seen("/auth/token") == exchanges
    assert alice.flow_status(flow)["status"] == "pending"
    assert bob.ui.run_cell(2).strip() == "False"

    # the very same code in alice's browser completes her login, and her kernel gets Ada
    tab.goto(callback)
    alice.panel.expect_signed_in(ada["name"])
    assert alice.ui.run_cell(1).strip() == ada["email"], alice.diagnostics()
    assert hub.emulator.requests_seen("/auth/token") == exchanges + 1

    # bob signs in as Grace through the same service and redirect URL
    grace_tab = bob.panel.click_login(bob.context)
    speckle_sign_in_and_wait(grace_tab, grace, bob)
    assert bob.ui.run_cell(1).strip() == grace["email"], bob.diagnostics()
    expect(alice.panel.user_name).to_have_text(ada["name"])

    # a refresh from a running cell goes kernel -> her server -> the service
    refreshes = hub.emulator.requests_seen("/auth/token")
    set_cell(alice, 3, RENEW_CELL)
    assert alice.ui.run_cell(3).strip() == ada["email"], alice.diagnostics()
    assert hub.emulator.requests_seen("/auth/token") == refreshes + 1
    # and her refresh token works for alice's server only
    out = str(hub.home("alice") / "refresh-token")
    set_cell(alice, 4, REFRESH_TOKEN_CELL.format(out=out))
    alice.ui.run_cell(4)
    refresh_token = Path(out).read_text()
    body = {"server_url": hub.emulator.url, "refresh_token": refresh_token}
    for direct in (False, True):
        refused = bob.relay("POST", "refresh", body, direct=direct)
        assert refused.status_code == 403 and refused.json()["error"] == "not_yours", refused.text
    renewed = alice.relay("POST", "refresh", body)
    assert renewed.status_code == 200 and renewed.json()["token"], renewed.status_code
    code = parse_qs(urlsplit(callback).query)["access_code"][0]
    assert code not in hub.log_path.read_text(), "the access code is in the hub's (or the service's) log"


def speckle_sign_in_and_wait(tab: Any, user: dict[str, str], person: Person) -> None:
    speckle_sign_in(tab, user["email"], user["password"], "Authorize")
    assert person.panel is not None
    person.panel.expect_signed_in(user["name"])


def set_cell(person: Person, index: int, source: str) -> None:
    person.page.evaluate(
        "([i, s]) => { window.jupyterapp.shell.currentWidget.content.widgets[i].model.sharedModel.setSource(s); }",
        [index, source],
    )


def test_the_secret_is_nowhere_a_user_can_read(service_hub: ServiceHub, people: dict[str, Person]) -> None:
    """From each user's kernel: os.environ, /proc/*/environ and /proc/*/cmdline of every process they may read,
    Jupyter's config, data and runtime directories, their server's REST API and the hub's with their token."""
    hub = service_hub
    secret = hub.secret
    for person in people.values():
        out = str(hub.home(person.person) / "probe.json")
        person.open_notebook([PROBE_CELL.format(out=out)])
    for person in people.values():
        person.wait_for_notebook()
        person.ui.run_cell(0, timeout=120)
        found = probe_result(hub, person.person, "probe.json")
        uid = found["uid"]
        assert uid == int(os.popen(f"id -u {person.user}").read()), "the kernel does not run as its user"  # noqa: S605
        assert uid != 0
        # the probe did read what it says: its own server's original environment, with the server's token
        token = hub.server_token(person.person)
        assert any(token in text for text in found["/proc/*/environ"].values()), "read no server's environment"
        assert any("speckle_nb_auth.hub" in text for text in found["/proc/*/cmdline"].values()), \
            "saw no service command line"
        assert found["server api"]["speckle-auth/status"].startswith("200 "), found["server api"]
        assert found["hub api"]["user"].startswith("200 "), found["hub api"]
        dump = json.dumps(found)
        assert secret not in dump, f"the app secret is readable by {person.user}: " + ", ".join(
            f"{where}: {key}" for where, part in found.items() if isinstance(part, dict)
            for key, text in part.items() if secret in str(text))
    assert "SPECKLE_APP_SECRET" not in json.dumps(probe_result(hub, "alice", "probe.json")["/proc/*/environ"])


def test_the_service_down_mid_login_ends_in_a_message(service_hub: ServiceHub, people: dict[str, Person]) -> None:
    """The service stops while alice's login waits for Speckle: her panel says so, and bob's earlier sign-in is
    untouched; the hub starts the service again, bob's sign-in still renews through it, and alice signs in."""
    hub = service_hub
    ada, grace = hub.emulator.credentials["users"][:2]
    alice, bob = open_panels(people, [LOGIN_CELL, EMAIL_CELL, RENEW_CELL])
    assert alice.panel is not None and bob.panel is not None
    speckle_sign_in_and_wait(bob.panel.click_login(bob.context), grace, bob)

    tab = alice.panel.click_login(alice.context)
    flow = alice.flow_id()
    poll(lambda: alice.flow_status(flow).get("status") == "pending", timeout=15, what="alice's flow pending")
    stop_service(hub)
    expect(alice.panel.error).to_contain_text("Speckle login service", timeout=30_000)
    expect(alice.panel.signed_in).to_be_hidden()
    assert bob.ui.run_cell(1).strip() == grace["email"]
    tab.close()

    poll(lambda: service_answers(hub), timeout=90, interval=0.5, what="the hub to restart its login service")
    assert bob.ui.run_cell(2).strip() == grace["email"], bob.diagnostics()  # renewed by the new service process
    speckle_sign_in_and_wait(alice.panel.click_login(alice.context), ada, alice)
    assert alice.ui.run_cell(1).strip() == ada["email"]


def service_pid(hub: ServiceHub) -> int | None:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"speckle_nb_auth.hub" in Path(f"/proc/{pid}/cmdline").read_bytes():
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                if f"JUPYTERHUB_SERVICE_URL=http://{LOOPBACK}:{hub.service_port}".encode() in environ:
                    return int(pid)
        except OSError:
            continue
    return None


def stop_service(hub: ServiceHub) -> None:
    pid = service_pid(hub)
    assert pid is not None, "the login service is not running"
    os.kill(pid, 9)


def service_answers(hub: ServiceHub) -> bool:
    try:
        with http_client() as http:
            return http.get(hub.service_url + "status").status_code == 403
    except Exception:  # noqa: BLE001 - not up yet
        return False
