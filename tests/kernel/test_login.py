"""`login()` and `get_client()` outside a notebook, the non-interactive sources, scope checks, the magic, and
the promise that importing the package loads no widget library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.panel import token_pair
from support.speckle import make_pat

from speckle_nb_auth import Client, InvalidServerURL, MissingScope, NotSignedIn, get_client, login
from speckle_nb_auth import _login as registry
from speckle_nb_auth import _sources as sources
from speckle_nb_auth._credentials import recall, remember
from speckle_nb_auth._magics import parse_line, register
from speckle_nb_auth._protocol import TokenPair

HEAVY = ("ipywidgets", "anywidget", "jupyter_server", "specklepy", "IPython", "tornado", "traitlets")


@pytest.fixture(autouse=True)
def _fresh_registry():
    registry._by_server.clear()
    registry._latest.clear()
    yield
    for client in list(registry._latest):
        client.close()
    registry._by_server.clear()
    registry._latest.clear()


def loaded(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         timeout=60)
    return [m for m in json.loads(out.stdout.strip().splitlines()[-1]) if m in HEAVY]


def test_importing_the_package_loads_no_widget_module():
    assert loaded("import speckle_nb_auth") == []
    assert loaded("from speckle_nb_auth import login, get_client") == []


def test_login_in_a_script_loads_no_widget_module(emulator):
    code = (
        "import os\nfrom speckle_nb_auth import login\n"
        f"os.environ['SPECKLE_TOKEN'] = {emulator.credentials['pat']!r}\n"
        f"os.environ['SPECKLE_SERVER'] = {emulator.url!r}\n"
        "assert login().user.name == 'Ada Lovelace'"
    )
    assert loaded(code) == []


# --- outside IPython ----------------------------------------------------------------------------------------


def test_login_uses_the_environment(emulator, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", emulator.credentials["pat"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    client = login()
    assert isinstance(client, Client) and client.user.name == "Ada Lovelace"
    assert get_client() is client and get_client(emulator.url) is client
    assert login(server=emulator.url + "/").user.name == "Ada Lovelace"


def test_login_without_anything_names_the_ways_to_sign_in():
    with pytest.raises(NotSignedIn) as caught:
        login()
    message = str(caught.value)
    for way in ("SPECKLE_TOKEN", "SPECKLE_SERVER", "login()", "desktop"):
        assert way in message
    with pytest.raises(NotSignedIn, match="SPECKLE_TOKEN"):
        get_client()


def test_a_refused_environment_token_is_named(emulator, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", "f" * 42)
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    with pytest.raises(NotSignedIn) as caught:
        login()
    assert "SPECKLE_TOKEN: This Speckle token was revoked" in str(caught.value)
    assert "f" * 16 not in str(caught.value)


def test_environment_token_for_another_server_is_not_used(emulator, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", emulator.credentials["pat"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    with pytest.raises(NotSignedIn, match="speckle.example.org"):
        login(server="speckle.example.org")


def test_remembered_sign_in_is_used_and_a_dead_one_skipped(emulator, memory_keyring):
    users = emulator.credentials["users"]
    remember(emulator.url, users[1]["id"], TokenPair(users[1]["pat"]))
    remember(emulator.url, users[0]["id"], TokenPair("f" * 42))  # most recent, but revoked
    assert login(server=emulator.url).user.name == "Grace Hopper"


def test_single_desktop_account_is_used(emulator, tmp_path):
    folder = tmp_path / "no-desktop-accounts" / "Speckle" / "Accounts"
    folder.mkdir(parents=True)
    user = emulator.credentials["users"][0]
    (folder / "a.json").write_text(json.dumps({
        "id": "a", "token": user["pat"], "serverInfo": {"name": "Emu", "url": emulator.url},
        "userInfo": {"id": user["id"], "name": user["name"], "email": user["email"]},
    }))
    assert login().user.name == "Ada Lovelace"


def test_requested_scopes_missing_outside_ipython(emulator, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", make_pat(emulator, ["profile:read", "streams:read", "tokens:read"]))
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    assert login(scopes=["streams:read"]).user.name == "Ada Lovelace"
    with pytest.raises(NotSignedIn, match="lacks the scopes? this notebook asks for: streams:write"):
        login(scopes=["streams:read", "streams:write"])


def test_scopes_that_cannot_be_learned_are_not_held_against_a_token(emulator, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", emulator.credentials["pat"])  # no tokens:read: its scopes are unknown
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    assert login(scopes=["streams:write"]).user.name == "Ada Lovelace"


def test_keyring_refresh_keeps_the_keyring_current(emulator, memory_keyring, monkeypatch):
    import httpx

    token, refresh_token = token_pair(emulator)
    user = emulator.credentials["users"][0]
    remember(emulator.url, user["id"], TokenPair(token, refresh_token))
    httpx.post(f"{emulator.url}/auth/logout", json={"token": token})
    monkeypatch.setenv("SPECKLE_APP_ID", emulator.credentials["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", emulator.credentials["app_secret"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)  # the app belongs to this server
    client = login(server=emulator.url)
    assert client.user.name == "Ada Lovelace"
    assert [pair.token for _, pair in recall(emulator.url)] == [client.token_pair.token] != [token]


def test_bad_arguments_are_refused_at_once():
    with pytest.raises(ValueError, match="variable name"):
        login(name="not valid")
    with pytest.raises(ValueError, match="variable name"):
        login(name="class")
    with pytest.raises(ValueError, match="scope"):
        login(scopes=["streams"])
    with pytest.raises(InvalidServerURL):
        login(server="ftp://example.com")


def test_in_a_kernel_login_without_waiting_returns_the_panel_at_once(emulator, monkeypatch):
    from speckle_nb_auth.panel import LoginPanel

    class Shell:
        user_ns: dict = {}
        execution_count = 1
        kernel = object()

    shown = []
    monkeypatch.setattr(registry, "_kernel_shell", lambda: Shell())
    monkeypatch.setattr(LoginPanel, "show", lambda self: shown.append(self))
    panel = login(server=emulator.url, name="sp", remember=True, scopes="streams:read", wait=False)
    try:
        assert isinstance(panel, LoginPanel) and shown == [panel]
        assert panel.status == "signed_out" and panel.remember and panel.variable == "sp"
        assert panel.server_url == emulator.url and panel.requested_scopes == ["streams:read"]
    finally:
        panel.close()


# --- get_client ---------------------------------------------------------------------------------------------


def test_get_client_per_server_and_latest(emulator, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", emulator.credentials["pat"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    first = login()
    second = login()
    assert get_client() is second and get_client(emulator.url) is second
    second.logout(revoke=False)
    assert get_client() is first  # the earlier one is still signed in
    first.close()
    with pytest.raises(NotSignedIn):
        get_client(emulator.url)


# --- scopes -------------------------------------------------------------------------------------------------


def test_check_scopes_names_missing_and_unrequested_writes():
    held = ["streams:read", "profile:read", "tokens:read"]
    check = sources.check_scopes(["streams:read", "streams:write"], held)
    assert check.missing == ("streams:write",) and not check.ok
    assert "streams:write" in check.describe()
    assert isinstance(check.error(), MissingScope) and check.error().scope == "streams:write"

    held = ["streams:read", "streams:write", "profile:email", "users:email", "apps:write"]
    check = sources.check_scopes(["streams:read"], held)
    assert check.ok and check.unrequested_writes == ("streams:write", "apps:write")
    assert "streams:write, apps:write" in check.describe()
    assert {s["name"]: s["unrequested"] for s in check.display()} == {
        "streams:read": False, "streams:write": True, "profile:email": False, "users:email": False,
        "apps:write": True,
    }

    unknown = sources.check_scopes(["streams:read"], None)
    assert unknown.ok and unknown.held is None and "cannot be listed" in unknown.describe()
    assert "Scopes not shown" in sources.check_scopes([], None).describe()  # said, rather than no chips
    assert sources.check_scopes([], ["profile:read"]).describe() == ""


@pytest.mark.parametrize(("scope", "write"), [
    ("streams:read", False), ("profile:email", False), ("users:email", False), ("streams:write", True),
    ("tokens:write", True), ("server:stats", True), ("automate:report-results", True),
])
def test_write_scopes(scope, write):
    assert sources.is_write_scope(scope) is write


def test_normalize_scopes():
    assert sources.normalize_scopes(None) == ()
    assert sources.normalize_scopes("streams:read") == ("streams:read",)
    assert sources.normalize_scopes(["a:read", " a:read ", "b:write"]) == ("a:read", "b:write")
    for bad in (["streams"], [5], ["STREAMS:READ"], ["x" * 100 + ":read"]):
        with pytest.raises(ValueError):
            sources.normalize_scopes(bad)


# --- the magic ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("", (None, "speckle")),
    ("app.speckle.systems", ("app.speckle.systems", "speckle")),
    ("--name sp", (None, "sp")),
    ("https://x.org --name=sp", ("https://x.org", "sp")),
    ("--name sp https://x.org", ("https://x.org", "sp")),
])
def test_magic_arguments(line, expected):
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["a b", "--other", "--name", "'unclosed"])
def test_magic_bad_arguments(line):
    with pytest.raises(ValueError, match="usage"):
        parse_line(line)


def test_magic_is_registered_and_calls_login(monkeypatch):
    from IPython.core.error import UsageError

    from speckle_nb_auth import _magics

    registered = {}

    class IPython:
        def register_magic_function(self, func, magic_kind, magic_name):
            registered[magic_name] = (func, magic_kind)

    register(IPython())
    func, kind = registered["speckle_login"]
    assert kind == "line"
    calls = []
    monkeypatch.setattr("speckle_nb_auth._login.login",
                        lambda server, name: calls.append((server, name)) or "panel")
    assert func("example.org --name sp") == "panel" and calls == [("example.org", "sp")]
    with pytest.raises(UsageError, match="usage"):
        _magics.speckle_login("a b c")


def test_logout_of_a_remembered_sign_in_forgets_it(emulator, monkeypatch, memory_keyring):
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    with Client(emulator.url, emulator.credentials["pat"]) as first:
        remember(emulator.url, first.user.id, first.token_pair)
    client = login()
    assert isinstance(client, Client) and recall(emulator.url)
    client.logout()
    assert recall(emulator.url) == []
