"""The hub's Speckle login service over HTTP, without a hub: its real Tornado app and JupyterHub's real HubOAuth,
whose token checks go to a tiny stand-in for the hub's REST API (`support.fake_hub`), and the emulator as Speckle.

Browsers and users' servers are both played with JupyterHub API tokens (HubAuth takes a token from any request);
the hub's own browser sign-in (HubOAuth's redirects) is exercised by tests/hub/real.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jupyterhub.orm import JSONDict
from jupyterhub.services.auth import HubOAuth
from support.fake_hub import SERVICE_SCOPE, FakeHub
from support.processes import answers, free_loopback_port, poll, start_server, stop_process
from support.speckle import consent
from traitlets.config import Config

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.hub import configure
from speckle_nb_auth.hub._owners import Owners
from speckle_nb_auth.hub._service import LoginService, make_app, scrubbed, service_from_environment
from speckle_nb_auth.serverext._relay import SERVICE_DOWN, SERVICE_LOST_FLOW, Relay

PREFIX = "/services/speckle-auth/"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@dataclass
class Running:
    hub: FakeHub
    emulator: Emulator
    service: LoginService
    url: str  # the service's prefix URL

    def client(self, name: str, scopes: tuple[str, ...] = ("self", SERVICE_SCOPE), kind: str = "user") \
            -> httpx.Client:
        """A browser or a server of hub user `name`: their token, a cookie jar, no redirects followed."""
        token = self.hub.token_for(name, scopes, kind)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"token {token}"}, trust_env=False,
                            follow_redirects=False, timeout=20)


def start_service(hub: FakeHub, emulator: Emulator, callback: str) -> tuple[LoginService, str]:
    creds = emulator.credentials

    async def build() -> LoginService:
        client = httpx.AsyncClient(timeout=10)
        service, problems = service_from_environment(client, {
            "SPECKLE_SERVER": emulator.url, "SPECKLE_APP_ID": creds["app_id"],
            "SPECKLE_APP_SECRET": creds["app_secret"], "SPECKLE_REDIRECT_URI": callback,
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        })
        assert problems == []
        return service

    service = hub.run(build())
    auth = HubOAuth(api_url=hub.api_url, api_token=secrets.token_hex(16), oauth_client_id="service-speckle-auth",
                    base_url=PREFIX, hub_prefix="/hub/", access_scopes={SERVICE_SCOPE}, cache_max_age=60)
    service.port = hub.serve(make_app(service, auth))
    return service, f"http://127.0.0.1:{service.port}{PREFIX}"


@pytest.fixture
def running() -> Iterator[Running]:
    with FakeHub() as hub, Emulator(redirect_url="http://127.0.0.1:1/services/speckle-auth/callback") as emu:
        service, url = start_service(hub, emu, emu.credentials["redirect_url"])
        yield Running(hub, emu, service, url)


def start_login(run: Running, browser: httpx.Client) -> tuple[str, str]:
    flow = secrets.token_urlsafe(18)
    started = browser.get("login", params={"server": run.emulator.url, "flow": flow}, headers=SAME_ORIGIN)
    assert started.status_code == 302, started.text
    return flow, started.headers["location"]


def follow(client: httpx.Client, response: httpx.Response) -> httpx.Response:
    assert response.status_code == 302, response.text
    return client.get(str(client.base_url.join(response.headers["location"])))


def callback_path(callback: str) -> str:
    return "callback?" + urlsplit(callback).query


def test_the_hubs_checks_and_early_polls_leave_no_warning_in_its_log(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JupyterHub checks the service's address every minute, and the panel asks about its login before the
    hub's sign-in of the tab lets the service start it: neither may fill the hub's log with 404s."""
    from speckle_nb_auth.hub import _service

    logged: list[tuple[int, str]] = []
    monkeypatch.setattr(_service, "access_log", SimpleNamespace(log=lambda level, fmt, *args: logged.append(
        (level, fmt % args))))
    root = httpx.get(running.url, trust_env=False)
    assert root.status_code == 200 and "Speckle login service" in root.text
    with running.client("alice") as alice:
        assert alice.get(f"flows/{secrets.token_urlsafe(18)}").status_code == 404
        assert alice.get("flows/not-a-flow-id").status_code == 400
    # the server logs a request just after answering it, on its own thread
    poll(lambda: len(logged) >= 3, timeout=5, what="the service's log lines")
    levels = {line.split(" ", 2)[0] + (" flows" if "/flows/" in line else ""): level for level, line in logged}
    assert levels == {"200": logging.INFO, "404 flows": logging.DEBUG, "400 flows": logging.WARNING}, logged


def test_every_route_needs_a_hub_user_with_the_service_scope(running: Running) -> None:
    anonymous = httpx.Client(base_url=running.url, trust_env=False)
    assert anonymous.get("status").json()["error"] == "not_authenticated"
    with running.client("eve", scopes=("self",)) as eve:
        refused = eve.get("status")
        assert refused.status_code == 403 and refused.json()["error"] == "not_allowed"
        assert "access:services!service=speckle-auth" in refused.json()["message"]
        page = eve.get("login", params={"flow": "f" * 20}, headers=SAME_ORIGIN)
        assert page.status_code == 403 and "ask the hub" in page.text
    with running.client("some-service", kind="service") as service:
        assert service.get("status").json()["error"] == "not_authenticated"
    with running.client("alice") as alice:
        status = alice.get("status").json()
    [server] = status["servers"]
    assert (server["url"], server["oauth"], server["app"]) == (running.emulator.url, True, "registered")
    assert running.emulator.credentials["app_secret"] not in str(status)


def test_a_login_belongs_to_the_hub_user_who_started_it(running: Running) -> None:
    emu = running.emulator
    with running.client("alice") as alice, running.client("bob") as bob:
        flow, authorize = start_login(running, alice)
        assert authorize.startswith(f"{emu.url}/authn/verify/{emu.credentials['app_id']}/")
        for who, seen in ((alice, 200), (bob, 404)):
            assert who.get(f"flows/{flow}").status_code == seen
        callback = consent(emu, authorize_url=authorize)
        done = alice.get(callback_path(callback))
        assert done.headers["location"] == PREFIX + "result"
        assert alice.get(f"flows/{flow}").json()["status"] == "done"
        assert bob.get(f"flows/{flow}").status_code == 404
        assert bob.post(f"flows/{flow}/claim").status_code == 404
        claimed = alice.post(f"flows/{flow}/claim").json()
        assert claimed["server_url"] == emu.url and claimed["token"] and claimed["refresh_token"]
        assert claimed["app_id"] == emu.credentials["app_id"]
        assert alice.post(f"flows/{flow}/claim").status_code == 404  # once


def test_one_users_many_logins_never_push_out_anothers(running: Running) -> None:
    """The attack: Bob starts logins until the service's store is full, which once ended Alice's pending one."""
    store = running.service.logins.store
    store.max_flows = 30  # the store's bound, as 10,000 is in production: reached here with fewer requests
    per_user = running.service.owners.max_flows_per_user
    with running.client("alice") as alice, running.client("bob") as bob:
        hers, _ = start_login(running, alice)
        his = [start_login(running, bob)[0] for _ in range(store.max_flows + 10)]
        assert alice.get(f"flows/{hers}").json()["status"] == "pending"  # still hers, still waiting
        assert [bob.get(f"flows/{flow}").status_code for flow in his[-per_user:]] == [200] * per_user
        assert bob.get(f"flows/{his[0]}").status_code == 404  # his oldest made room for his newest
    assert len(store) == per_user + 1


def test_the_owners_file_and_its_journal_are_the_services_alone(tmp_path: Path) -> None:
    path = tmp_path / "owners.sqlite"
    earlier = sqlite3.connect(path)  # a service still running, or one that crashed: its journal files exist
    earlier.execute("PRAGMA journal_mode=WAL")
    earlier.execute("CREATE TABLE earlier (x)")
    earlier.commit()
    for name in tmp_path.iterdir():
        name.chmod(0o644)  # made by an earlier version, or with a loose umask
    owners = Owners(str(path))
    owners.hand_out(secrets.token_hex(21), "alice")
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()}
    owners.close()
    earlier.close()
    assert modes == {"owners.sqlite": "0o600", "owners.sqlite-wal": "0o600", "owners.sqlite-shm": "0o600"}, modes


def test_a_callback_completes_nothing_without_its_browsers_cookie_or_for_another_user(running: Running) -> None:
    emu = running.emulator
    with running.client("alice") as alice, running.client("bob") as bob:
        flow, authorize = start_login(running, alice)
        callback = consent(emu, authorize_url=authorize)
        exchanges = emu.requests_seen("/auth/token")
        # bob's browser: no flow cookie of alice's
        assert follow(bob, bob.get(callback_path(callback))).status_code == 400
        # a shared browser where bob signed in to the hub after alice: her cookie names no login of his
        bob.cookies = alice.cookies
        answer = bob.get(callback_path(callback))
        assert "No login in progress" in follow(bob, answer).text
        assert emu.requests_seen("/auth/token") == exchanges
        assert alice.get(f"flows/{flow}").json()["status"] == "pending"
        # nor can bob's server paste alice's code back
        assert bob.post(f"flows/{flow}/code", json={"pasted": callback}).status_code == 404
        assert emu.requests_seen("/auth/token") == exchanges
        alice.get(callback_path(callback))
        assert alice.get(f"flows/{flow}").json()["status"] == "done"


def test_a_login_is_started_only_from_a_page_of_the_hub(running: Running) -> None:
    with running.client("alice") as alice:
        flow = secrets.token_urlsafe(18)
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Referer": "https://evil.example.org/"}, {}):
            page = alice.get("login", params={"server": running.emulator.url, "flow": flow}, headers=headers)
            assert page.status_code == 403 and "Log in with Speckle" in page.text
        assert alice.get(f"flows/{flow}").status_code == 404
        origin = running.url.split(PREFIX)[0]
        started = alice.get("login", params={"server": running.emulator.url, "flow": flow},
                            headers={"Referer": origin + "/user/alice/lab"})
        assert started.status_code == 302


def test_a_refresh_token_renews_only_for_the_user_it_was_handed_to(running: Running) -> None:
    emu = running.emulator
    with running.client("alice") as alice, running.client("bob") as bob:
        flow, authorize = start_login(running, alice)
        alice.get(callback_path(consent(emu, authorize_url=authorize)))
        claimed = alice.post(f"flows/{flow}/claim").json()
        body = {"server_url": emu.url, "refresh_token": claimed["refresh_token"]}
        refused = bob.post("refresh", json=body)
        assert refused.status_code == 403 and refused.json()["error"] == "not_yours"
        renewed = alice.post("refresh", json=body)
        assert renewed.status_code == 200, renewed.text
        pair = renewed.json()
        assert pair["token"] != claimed["token"]
        newer = {"server_url": emu.url, "refresh_token": pair["refresh_token"]}
        assert bob.post("refresh", json=newer).status_code == 403
        assert alice.post("refresh", json=newer).status_code == 200
        unknown = alice.post("refresh", json={"server_url": emu.url, "refresh_token": secrets.token_hex(21)})
        assert unknown.status_code == 403 and "log in again" in unknown.json()["message"]


def test_the_service_log_hides_codes_and_states(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    hidden = "/p/callback?access_code=[hidden]&flow=f1&_xsrf=[hidden]"
    assert scrubbed("/p/callback?access_code=abc&flow=f1&_xsrf=x") == hidden
    emu = running.emulator
    caplog.set_level(logging.INFO)
    with running.client("alice") as alice:
        flow, authorize = start_login(running, alice)
        callback = consent(emu, authorize_url=authorize)
        alice.get(callback_path(callback))
        code = parse_qs(urlsplit(callback).query)["access_code"][0]
        alice.get("oauth_callback", params={"code": code, "state": "s" * 20})
    # the service's own lines (its main() turns httpx's request lines off; here they are the test's clients')
    logged = "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("httpx"))
    assert "callback?access_code=[hidden]" in logged, logged
    assert code not in logged and flow in logged


def test_the_relay_tells_a_service_that_is_down_or_lost_the_login(running: Running) -> None:
    """What a user's server answers its kernel, for the kernel reports a flow's message."""
    hub, emu = running.hub, running.emulator
    with running.client("alice") as browser:
        flow, _ = start_login(running, browser)
    relay_token = hub.token_for("alice")  # her server's token

    async def relayed(url: str) -> tuple[dict[str, Any], Any, Any]:
        async with httpx.AsyncClient() as client:
            relay = Relay(url, PREFIX, relay_token, client)
            status = await relay.status({"mailbox": True, "servers": []})
            seen = await relay.flow(flow)
            running.service.routes.owners = Owners()  # what a restart of the service leaves
            lost = await relay.flow(flow)
            down = await Relay("http://127.0.0.1:9/x/", PREFIX, relay_token, client).flow(flow)
            claim = await Relay("http://127.0.0.1:9/x/", PREFIX, relay_token, client).forward(
                f"flows/{flow}/claim", b"{}")
            return status, (seen, lost, down), claim

    status, (seen, lost, down), claim = hub.run(relayed(running.url))
    assert status["mailbox"] is True and status["login_base"] == PREFIX
    assert status["servers"][0]["url"] == emu.url
    assert seen.status == 200 and seen.body["status"] == "pending"
    assert lost.body == {"status": "failed", "message": SERVICE_LOST_FLOW, "paste": False, "app": ""}
    assert down.body["status"] == "failed" and down.body["message"] == SERVICE_DOWN
    assert claim.status == 502 and claim.body["message"] == SERVICE_DOWN


def test_configure_adds_the_service_and_never_the_secret(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = secrets.token_hex(20)
    monkeypatch.setenv("MY_SPECKLE_SECRET", secret)
    c = Config()
    c.JupyterHub.base_url = "/jhub"
    c.JupyterHub.services = [{"name": "speckle-auth", "url": "http://hub:10101"}]  # as zero-to-jupyterhub makes
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:users"]}]
    c.KubeSpawner.environment = {"KEEP": "1"}
    c.Spawner.environment = {"ALSO": "1"}
    redirect = configure(c, server="https://speckle.example.org", app_id="abc", app_secret_env="MY_SPECKLE_SECRET",
                         public_url="https://hub.example.org/", service_url="http://hub:10101", bind_ip="0.0.0.0")
    assert redirect == "https://hub.example.org/jhub/services/speckle-auth/callback"
    assert secret not in str(c) and secret not in repr(c)
    [service] = c.JupyterHub.services
    assert service["url"] == "http://hub:10101" and service["oauth_no_confirm"] is True
    assert service["command"][1:] == ["-m", "speckle_nb_auth.hub"]
    assert service["environment"]["SPECKLE_APP_SECRET"](None) == secret  # read when the hub starts it
    # What the hub stores of the service in its database: the variable's name, and no warning at every start
    with caplog.at_level(logging.WARNING):
        stored = JSONDict().process_bind_param(service["environment"], None)
    assert not caplog.records and secret not in stored and "MY_SPECKLE_SECRET" in stored
    assert service["environment"]["SPECKLE_AUTH_BIND_IP"] == "0.0.0.0"
    assert service["environment"]["SPECKLE_AUTH_STATE_FILE"] == str(Path.cwd() / "speckle-auth-owners.sqlite")
    roles = {role["name"]: role["scopes"] for role in c.JupyterHub.load_roles}
    assert roles["user"] == ["self", "read:users", "access:services!service=speckle-auth"]
    assert roles["server"] == ["users:activity!user", "access:servers!server", "access:services!service=speckle-auth"]
    for section, kept in (("Spawner", "ALSO"), ("KubeSpawner", "KEEP")):
        env = c[section].environment
        assert env[kept] == "1" and env["SPECKLE_AUTH_SERVICE_URL"] == "http://hub:10101/jhub/services/speckle-auth/"
        assert env["SPECKLE_AUTH_SERVICE_PREFIX"] == "/jhub/services/speckle-auth/"
        assert not any(secret in str(value) for value in env.values())
    again = Config()
    again.Spawner.server_token_scopes = ["users:activity!user"]
    configure(again, server="https://s.example.org", app_id="a", app_secret_env="MY_SPECKLE_SECRET",
              public_url="https://hub.example.org")
    assert again.Spawner.server_token_scopes == ["users:activity!user", "access:services!service=speckle-auth"]


def test_a_users_server_relays_to_the_service_and_warns_about_a_secret_of_its_own(
    running: Running, tmp_path: Any
) -> None:
    """A Jupyter server with SPECKLE_AUTH_SERVICE_URL holds no app and forwards flows, claims and refreshes to the
    service with its own hub token (here, a token of alice's); given an app secret under JupyterHub anyway, it
    warns that every user can read it."""
    emu = running.emulator
    port, token = free_loopback_port(), secrets.token_hex(16)
    misplaced = secrets.token_hex(20)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECKLE_", "JUPYTERHUB_"))}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERHUB_API_TOKEN=running.hub.token_for("alice"), SPECKLE_AUTH_SERVICE_URL=running.url,
               SPECKLE_AUTH_SERVICE_PREFIX=PREFIX, SPECKLE_SERVER=emu.url, SPECKLE_APP_SECRET=misplaced)
    log = tmp_path / "server.log"
    proc = start_server(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--allow-root"], log=log, env=env,
        ready=lambda: answers(f"http://127.0.0.1:{port}/speckle-auth/status", token=token),
        what="alice's Jupyter server",
    )
    server = httpx.Client(base_url=f"http://127.0.0.1:{port}/speckle-auth/", trust_env=False, timeout=20,
                          headers={"Authorization": f"token {token}"})
    try:
        status = server.get("status")
        body = status.json()
        assert body["login_base"] == PREFIX and body["mailbox"] is True
        assert [s["app"] for s in body["servers"]] == ["registered"]

        with running.client("alice") as alice, running.client("bob") as bob:
            flow, authorize = start_login(running, alice)
            assert server.get(f"flows/{flow}").json()["status"] == "pending"
            bobs, _ = start_login(running, bob)
            assert server.get(f"flows/{bobs}").status_code == 404
            assert server.post(f"flows/{bobs}/claim").status_code == 404
            alice.get(callback_path(consent(emu, authorize_url=authorize)))
        assert server.get(f"flows/{flow}").json()["status"] == "done"
        claimed = server.post(f"flows/{flow}/claim", json={}).json()
        assert claimed["server_url"] == emu.url and claimed["token"]
        renewed = server.post("refresh", json={"server_url": emu.url, "refresh_token": claimed["refresh_token"]})
        assert renewed.status_code == 200 and renewed.json()["token"] != claimed["token"]
    finally:
        server.close()
        stop_process(proc)
    text = log.read_text()
    assert "every user who can run code here can read it" in text and "speckle_nb_auth.hub.configure" in text
    assert "through the hub's login service" in text
    assert misplaced not in text and claimed["token"] not in text


def test_a_restarted_service_still_knows_to_whom_it_handed_each_refresh_token(tmp_path: Any) -> None:
    path = tmp_path / "owners.sqlite"
    token = secrets.token_hex(21)
    owners = Owners(str(path))
    owners.hand_out(token, "alice")
    owners.close()
    again = Owners(str(path))
    assert again.of_refresh_token(token) == "alice" and again.of_refresh_token(secrets.token_hex(21)) is None
    again.close()
    assert path.stat().st_mode & 0o077 == 0
    assert token.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())
    memory = Owners()
    memory.hand_out(token, "alice")
    assert memory.of_refresh_token(token) == "alice" and Owners().of_refresh_token(token) is None
