"""The login panel's kernel half, driven the way anywidget drives it: `(widget, content, buffers)` messages,
against a real emulator over loopback; no browser."""

from __future__ import annotations

import json
import threading

import httpx
import keyring
import pytest
from keyring.backends import fail
from support.panel import (
    WHO,
    FakeBrowser,
    FakeShell,
    assert_consistent,
    assert_no_secret,
    deliver,
    direct_refresh,
    hand_over,
    kill_token,
    token_pair,
)
from support.speckle import make_pat

from speckle_nb_auth import Client, InvalidToken, NotSignedIn, RefreshRejected, get_client
from speckle_nb_auth._credentials import recall
from speckle_nb_auth.panel import LoginPanel

# every test of the panel starts and ends with an empty sign-in registry (support/fixtures_panel.py)
pytestmark = pytest.mark.usefixtures("_fresh_registry")


def works(emu, token: str) -> bool:
    headers = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(f"{emu.url}/graphql", headers=headers, json={"query": WHO})
    return answer.status_code == 200 and bool((answer.json().get("data") or {}).get("activeUser"))


# --- signing in ---------------------------------------------------------------------------------------------


def test_pat_signs_in_and_injects_a_working_client(emulator, panels, shell):
    pat = emulator.credentials["pat"]
    panel = panels(server=emulator.url)
    assert panel.status == "signed_out"
    assert "speckle" not in shell.user_ns

    deliver(panel, {"type": "pat", "server": emulator.url, "token": pat})

    speckle = shell.user_ns["speckle"]
    assert speckle.user.name == emulator.credentials["users"][0]["name"] == panel.user_name
    assert speckle.graphql(WHO)["activeUser"]["name"] == "Ada Lovelace"
    assert panel.status == "signed_in" and panel.source == "token" and not panel.error and not panel.busy
    assert panel.user_email == "ada@example.com"
    assert panel.server_url == emulator.url
    assert get_client() is speckle and get_client(emulator.url) is speckle
    assert pat[-8:] not in repr(speckle) and pat not in repr(speckle) and pat not in repr(panel)
    assert_no_secret(panel, pat)


def test_oauth_hand_over_signs_in(emulator, panels, shell):
    token, refresh_token = token_pair(emulator)
    panel = panels()
    hand_over(panel, emulator.url + "/", token, refresh_token)
    assert panel.status == "signed_in" and panel.source == "oauth"
    speckle = shell.user_ns["speckle"]
    assert speckle.user.name == "Ada Lovelace"
    assert speckle.token_pair.refresh_token == refresh_token
    assert_no_secret(panel, token, refresh_token)


def test_variable_name_is_honoured(emulator, panels, shell):
    panel = panels(name="sp")
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    assert shell.user_ns["sp"].user.name == "Ada Lovelace" and "speckle" not in shell.user_ns
    assert panel.variable == "sp"


def test_new_sign_in_replaces_the_old_one(emulator, panels, shell):
    users = emulator.credentials["users"]
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": users[0]["pat"]})
    first = shell.user_ns["speckle"]
    deliver(panel, {"type": "pat", "server": emulator.url, "token": users[1]["pat"]})
    assert shell.user_ns["speckle"].user.name == "Grace Hopper" == panel.user_name
    assert get_client() is shell.user_ns["speckle"]
    with pytest.raises(NotSignedIn):
        first.graphql(WHO)  # closed, not revoked
    assert works(emulator, users[0]["pat"])


# --- signing in without asking ------------------------------------------------------------------------------


def test_environment_token_signs_in_at_construction(emulator, panels, shell, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", emulator.credentials["pat"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    panel = panels()
    assert panel.status == "signed_in" and panel.source == "environment"
    assert "SPECKLE_TOKEN" in panel.message
    assert shell.user_ns["speckle"].user.name == "Ada Lovelace"
    assert_no_secret(panel, emulator.credentials["pat"])


def test_invalid_environment_token_leaves_the_panel_signed_out(emulator, panels, shell, monkeypatch):
    monkeypatch.setenv("SPECKLE_TOKEN", "f" * 42)
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    panel = panels()
    assert panel.status == "signed_out" and "speckle" not in shell.user_ns
    assert panel.message.startswith("Not signed in yet. SPECKLE_TOKEN: This Speckle token was revoked")


def write_desktop_account(tmp_path, emu, user: int, name: str) -> None:
    folder = tmp_path / "no-desktop-accounts" / "Speckle" / "Accounts"
    folder.mkdir(parents=True, exist_ok=True)
    info = emu.credentials["users"][user]
    (folder / f"{name}.json").write_text(json.dumps({
        "id": name, "isDefault": user == 0, "token": info["pat"], "refreshToken": None,
        "serverInfo": {"name": "Emulated Speckle", "url": emu.url},
        "userInfo": {"id": info["id"], "name": info["name"], "email": info["email"]},
    }))


def test_single_desktop_account_signs_in_and_logout_leaves_it_working(emulator, panels, shell, tmp_path):
    write_desktop_account(tmp_path, emulator, 0, "ada")
    panel = panels(server=emulator.url)
    assert panel.status == "signed_in" and panel.source == "desktop"
    assert panel.desktop_accounts == [{"label": "Ada Lovelace <ada@example.com> on Emulated Speckle",
                                       "server_url": emulator.url}]
    deliver(panel, {"type": "logout"})
    assert panel.status == "signed_out" and "desktop" in panel.message
    assert works(emulator, emulator.credentials["pat"])  # the desktop apps' token is not revoked


def test_several_desktop_accounts_are_listed_and_one_is_chosen(emulator, panels, shell, tmp_path):
    write_desktop_account(tmp_path, emulator, 0, "ada")
    write_desktop_account(tmp_path, emulator, 1, "grace")
    panel = panels()
    assert panel.status == "signed_out"
    labels = [a["label"] for a in panel.desktop_accounts]
    assert len(labels) == 2
    assert_no_secret(panel, *(u["pat"] for u in emulator.credentials["users"]))
    index = next(i for i, label in enumerate(labels) if label.startswith("Grace"))
    deliver(panel, {"type": "desktop", "index": index})
    assert shell.user_ns["speckle"].user.name == "Grace Hopper"


# --- remember me --------------------------------------------------------------------------------------------


def test_remember_stores_in_the_keyring_and_a_new_panel_signs_in_from_it(emulator, panels, memory_keyring):
    pat = emulator.credentials["pat"]
    panel = panels(remember=True)
    deliver(panel, {"type": "pat", "server": emulator.url, "token": pat})
    assert panel.remember and panel.status == "signed_in"
    assert [pair.token for _, pair in recall(emulator.url)] == [pat]

    again = panels(server=emulator.url, shell=FakeShell())  # a new kernel: it signs in from the keyring
    assert again.status == "signed_in" and again.source == "keyring" and again.remember

    deliver(again, {"type": "logout"})
    assert recall(emulator.url) == []
    assert works(emulator, pat) and again.kept_token  # a token the person brought stays theirs
    deliver(again, {"type": "revoke_kept"})
    assert not works(emulator, pat) and not again.kept_token


def test_remember_toggled_while_signed_in(emulator, panels, memory_keyring):
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    assert recall(emulator.url) == []
    panel.remember = True  # as the browser's checkbox sets it
    assert len(recall(emulator.url)) == 1
    panel.remember = False
    assert recall(emulator.url) == []


def test_without_a_keyring_the_sign_in_is_for_this_session(emulator, panels, shell):
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        panel = panels(remember=True)
        deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
        assert panel.status == "signed_in" and shell.user_ns["speckle"].user.name == "Ada Lovelace"
        assert "only for this session" in panel.message
        assert panel.remember is False
    finally:
        keyring.set_keyring(previous)


# --- logging out --------------------------------------------------------------------------------------------


def test_logout_revokes_removes_the_variable_and_forgets(emulator, panels, shell, memory_keyring):
    token, refresh_token = token_pair(emulator)
    panel = panels(remember=True)
    hand_over(panel, emulator.url, token, refresh_token)
    assert len(recall(emulator.url)) == 1
    speckle = shell.user_ns["speckle"]

    deliver(panel, {"type": "logout"})

    assert panel.status == "signed_out" and panel.user_name == "" and "revoked" in panel.message
    assert "speckle" not in shell.user_ns
    assert recall(emulator.url) == []
    assert not works(emulator, token)
    with pytest.raises(NotSignedIn):
        get_client()
    with pytest.raises(NotSignedIn):
        speckle.graphql(WHO)
    deliver(panel, {"type": "logout"})  # again: harmless
    assert panel.status == "signed_out" and not panel.error


def test_client_logout_from_a_cell_updates_the_panel(emulator, panels, shell):
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    shell.user_ns["speckle"].logout()
    assert panel.status == "signed_out" and "speckle" not in shell.user_ns and panel.client is None


def test_logout_keeps_a_reassigned_variable(emulator, panels, shell):
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    shell.user_ns["speckle"] = "mine now"
    deliver(panel, {"type": "logout"})
    assert shell.user_ns["speckle"] == "mine now"


def test_logout_with_the_server_down_still_signs_out_here(emulator, panels, shell):
    panel = panels()
    hand_over(panel, emulator.url, *token_pair(emulator))  # a sign-in made here: Log out revokes it
    emulator.inject_fault("/auth/logout", "drop")
    deliver(panel, {"type": "logout"})
    assert panel.status == "signed_out" and "speckle" not in shell.user_ns
    assert "revoke it yourself at " + emulator.url + "/settings" in panel.error


def test_logout_keeps_a_pasted_token_valid_until_also_revoke_is_pressed(emulator, panels, shell):
    """A pasted personal access token may be what the person's CI uses: Log out once revoked it."""
    pat = make_pat(emulator, ["profile:read"])
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": pat})
    # the signed-in panel says what it holds, and what Log out will do with it
    assert panel.message.startswith("Signed in with a personal access token: Log out forgets it here and keeps")
    deliver(panel, {"type": "logout"})
    assert panel.status == "signed_out" and "speckle" not in shell.user_ns
    assert works(emulator, pat) and panel.kept_token
    assert "was not revoked" in panel.message and "Also revoke it on Speckle" in panel.message
    emulator.inject_fault("/auth/logout", "drop")
    deliver(panel, {"type": "revoke_kept"})
    assert "could not be revoked" in panel.error and panel.kept_token and works(emulator, pat)  # try again later
    deliver(panel, {"type": "revoke_kept"})
    assert not works(emulator, pat) and not panel.kept_token and "no longer works anywhere" in panel.message
    assert pat not in panel.message + panel.error

    other = make_pat(emulator, ["profile:read"])
    deliver(panel, {"type": "pat", "server": emulator.url, "token": other})
    shell.user_ns["speckle"].logout()  # from a cell: the same default, by whose the token is
    assert works(emulator, other)
    deliver(panel, {"type": "pat", "server": emulator.url, "token": other})
    shell.user_ns["speckle"].logout(revoke=True)  # revoke= keeps its meaning
    assert not works(emulator, other)


# --- refreshing ---------------------------------------------------------------------------------------------


def test_refresh_through_the_browser(emulator, panels, shell, memory_keyring):
    token, refresh_token = token_pair(emulator)
    panel = panels(remember=True)
    browser = FakeBrowser(panel, emulator)
    deliver(panel, {"type": "ready"})
    hand_over(panel, emulator.url, token, refresh_token)
    speckle = shell.user_ns["speckle"]
    kill_token(emulator, token)

    assert speckle.graphql(WHO)["activeUser"]["name"] == "Ada Lovelace"

    assert len(browser.requests) == 1
    request = browser.requests[0]
    assert request["type"] == "refresh" and request["server_url"] == emulator.url
    assert request["refresh_token"] == refresh_token
    new = speckle.token_pair
    assert new.token != token and works(emulator, new.token)
    assert [pair.token for _, pair in recall(emulator.url)] == [new.token]  # the remembered copy follows
    assert_no_secret(panel, token, refresh_token, new.token, new.refresh_token)


def test_refresh_failure_reported_by_the_browser(emulator, panels, shell):
    token, refresh_token = token_pair(emulator)
    panel = panels()
    FakeBrowser(panel, emulator, answer="failed")
    deliver(panel, {"type": "ready"})
    hand_over(panel, emulator.url, token, refresh_token)
    kill_token(emulator, token)
    with pytest.raises(RefreshRejected, match="no longer accepts"):
        shell.user_ns["speckle"].graphql(WHO)
    assert "no longer accepts" in panel.error


def test_refresh_without_an_answer_times_out_and_a_late_answer_is_revoked(emulator, panels, shell):
    token, refresh_token = token_pair(emulator)
    panel = panels()
    panel.refresh_timeout = 0.3
    browser = FakeBrowser(panel, emulator, answer="none")
    deliver(panel, {"type": "ready"})
    hand_over(panel, emulator.url, token, refresh_token)
    kill_token(emulator, token)
    with pytest.raises(RefreshRejected) as caught:
        shell.user_ns["speckle"].graphql(WHO)
    assert caught.value.code == "refresh_timeout"

    late_token, late_refresh = direct_refresh(emulator, refresh_token)
    deliver(panel, {"type": "refreshed", "id": browser.requests[0]["id"], "token": late_token,
                    "refresh_token": late_refresh})
    assert not works(emulator, late_token)


def test_refresh_needs_a_shown_panel(emulator, panels, shell):
    token, refresh_token = token_pair(emulator)
    panel = panels()
    browser = FakeBrowser(panel, emulator)
    hand_over(panel, emulator.url, token, refresh_token)
    kill_token(emulator, token)
    with pytest.raises(RefreshRejected, match="login panel"):
        shell.user_ns["speckle"].graphql(WHO)
    assert browser.requests == []


def test_refresh_directly_with_app_credentials_in_the_environment(emulator, panels, shell, monkeypatch):
    monkeypatch.setenv("SPECKLE_APP_ID", emulator.credentials["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", emulator.credentials["app_secret"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)  # the app belongs to this server
    token, refresh_token = token_pair(emulator)
    panel = panels()
    assert panel.kernel_refresh
    browser = FakeBrowser(panel, emulator)
    hand_over(panel, emulator.url, token, refresh_token)
    kill_token(emulator, token)
    speckle = shell.user_ns["speckle"]
    assert speckle.graphql(WHO)["activeUser"]["name"] == "Ada Lovelace"
    assert speckle.token_pair.token != token
    assert browser.requests == []


def test_answers_to_requests_never_made_are_ignored(emulator, panels, shell):
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    deliver(panel, {"type": "refreshed", "id": "x" * 20, "token": "a" * 42, "refresh_token": "b" * 42})
    deliver(panel, {"type": "refresh_failed", "id": "x" * 20, "message": "no"})
    assert panel.status == "signed_in" and not panel.error


# --- scopes -------------------------------------------------------------------------------------------------


def test_missing_scopes_are_named_and_refused(emulator, panels, shell):
    pat = make_pat(emulator, ["profile:read", "profile:email", "streams:read", "tokens:read"])
    panel = panels(scopes=["streams:read", "streams:write"])
    deliver(panel, {"type": "pat", "server": emulator.url, "token": pat})
    assert panel.status == "signed_out" and "speckle" not in shell.user_ns
    assert "streams:write" in panel.error and panel.missing_scopes == ["streams:write"]


def test_scopes_are_listed_with_unrequested_writes_marked(emulator, panels, shell):
    pat = make_pat(emulator, ["profile:read", "streams:read", "streams:write", "tokens:read"])
    panel = panels(scopes=["streams:read"])
    deliver(panel, {"type": "pat", "server": emulator.url, "token": pat})
    assert panel.status == "signed_in"
    shown = {s["name"]: s for s in panel.scopes}
    assert shown["streams:write"] == {"name": "streams:write", "write": True, "unrequested": True}
    assert shown["streams:read"]["write"] is False and shown["tokens:read"]["unrequested"] is False
    assert "streams:write" in panel.message
    assert panel.requested_scopes == ["streams:read"]


def test_an_oauth_token_lists_its_apps_scopes_from_the_claimed_app_id(emulator, panels, shell):
    """No app credentials in the kernel: the app id that came with the claim tells the token's scopes."""
    token, refresh_token = token_pair(emulator)
    panel = panels()
    deliver(panel, {"type": "oauth", "server_url": emulator.url, "token": token, "refresh_token": refresh_token,
                    "app_id": emulator.credentials["app_id"]})
    assert panel.status == "signed_in"
    assert sorted(s["name"] for s in panel.scopes) == ["profile:email", "profile:read", "streams:read", "users:read"]


def test_a_malformed_app_id_is_refused(emulator, panels, shell):
    token, refresh_token = token_pair(emulator)
    panel = panels()
    deliver(panel, {"type": "oauth", "server_url": emulator.url, "token": token, "app_id": "../x"})
    assert panel.status == "signed_out" and "app id" in panel.error


def test_scopes_that_cannot_be_known_do_not_block(emulator, panels, shell):
    panel = panels(scopes=["streams:read"])
    # the seeded PAT has no tokens:read, so its scopes cannot be listed
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    assert panel.status == "signed_in" and panel.scopes == []
    assert "cannot be listed" in panel.message


# --- bad input ----------------------------------------------------------------------------------------------

BAD = [
    ({"type": "pat", "server": "{url}", "token": 123}, "must be text"),
    ({"type": "pat", "server": "{url}", "token": ""}, "No personal access token"),
    ({"type": "pat", "server": "{url}"}, "No personal access token"),
    ({"type": "pat", "server": "{url}", "token": "   "}, "No personal access token"),
    ({"type": "pat", "server": "{url}", "token": "ab cd"}, "unusual characters"),
    ({"type": "pat", "server": "{url}", "token": "é" * 42}, "unusual characters"),
    ({"type": "pat", "server": "{url}", "token": "a" * 100_000}, "too long"),
    ({"type": "pat", "server": "{url}", "token": ["a"]}, "must be text"),
    ({"type": "pat", "server": "ftp://example.com", "token": "a" * 42}, "not a web address"),
    ({"type": "pat", "server": "http://example.com", "token": "a" * 42}, "plain http"),
    ({"type": "pat", "server": "https://u:p@example.com", "token": "a" * 42}, "must not contain credentials"),
    ({"type": "pat", "server": "a" * 42, "token": "a" * 42}, "not a Speckle server address"),
    ({"type": "pat", "server": "https://" + "a" * 5000 + ".com", "token": "a" * 42}, "too long"),
    ({"type": "pat", "server": 5, "token": "a" * 42}, "must be text"),
    ({"type": "pat", "server": "{url}", "token": "f" * 42}, "not accepted by http://127.0.0.1"),
    ({"type": "pat", "server": "{url}", "token": "not-a-token"}, "not a Speckle token"),
    ({"type": "pat", "server": "{url}", "token": "F" * 42}, "42 characters of 0-9 and a-f"),
    ({"type": "oauth", "token": "a" * 42}, "No Speckle server address"),
    ({"type": "oauth", "server_url": "{url}", "token": "a" * 42, "refresh_token": 7}, "must be text"),
    ({"type": "oauth", "server_url": "{url}", "token": None}, "did not deliver"),
    ({"type": "desktop", "index": 3}, "no longer listed"),
    ({"type": "desktop", "index": -1}, "desktop accounts listed"),
    ({"type": "desktop", "index": "0"}, "desktop accounts listed"),
    ({"type": "desktop", "index": True}, "desktop accounts listed"),
    ({"type": "desktop"}, "desktop accounts listed"),
    ({"type": "refreshed", "id": "../../x", "token": "a" * 42}, "did not make"),
    ({"type": "refreshed", "id": "x" * 20, "token": 5}, "must be text"),
]


@pytest.mark.parametrize(("content", "expected"), BAD,
                         ids=[f"{c['type']}-{i}" for i, (c, _) in enumerate(BAD)])
def test_bad_input_is_explained_and_keeps_the_sign_in(emulator, panels, shell, content, expected):
    pat = emulator.credentials["pat"]
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": pat})
    speckle = shell.user_ns["speckle"]
    content = {k: (v.replace("{url}", emulator.url) if isinstance(v, str) else v) for k, v in content.items()}

    deliver(panel, content)

    assert expected in panel.error
    assert "still signed in as Ada Lovelace" in panel.error
    assert len(panel.error) < 600
    assert shell.user_ns["speckle"] is speckle and panel.status == "signed_in" and not panel.busy
    assert get_client() is speckle
    assert_no_secret(panel, pat, content.get("token") if isinstance(content.get("token"), str) else None)


@pytest.mark.parametrize("content", [None, 5, "pat", [], {}, {"type": 5}, {"type": "nonsense", "token": "a"}])
def test_what_is_not_a_message_is_ignored(emulator, panels, content):
    panel = panels()
    before = panel.get_state()
    deliver(panel, content)
    assert panel.get_state() == before


@pytest.mark.parametrize(("kind", "expected"), [("drop", "Could not reach"), ("error", "internal error")])
def test_server_down_is_explained_and_keeps_the_sign_in(emulator, panels, shell, kind, expected):
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    emulator.inject_fault("/graphql", kind)
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["users"][1]["pat"]})
    assert expected in panel.error and panel.user_name == "Ada Lovelace" and panel.status == "signed_in"
    assert shell.user_ns["speckle"].user.name == "Ada Lovelace"


def test_server_down_when_signed_out(emulator, panels, shell):
    panel = panels()
    emulator.inject_fault("/graphql", "drop")
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    assert "Could not reach" in panel.error and "still signed in" not in panel.error
    assert panel.status == "signed_out" and "speckle" not in shell.user_ns


def test_an_unexpected_failure_is_a_generic_message(emulator, panels, shell, monkeypatch):
    panel = panels()
    secret = "s3cr3t-" + "z" * 30

    def boom(*args, **kwargs):
        raise RuntimeError(f"internal detail {secret}")

    monkeypatch.setattr("speckle_nb_auth._session.Client", boom)
    deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
    assert "Something unexpected went wrong" in panel.error
    assert secret not in panel.error and "Traceback" not in panel.error
    assert panel.status == "signed_out" and not panel.busy


def test_cancel_says_so(panels):
    panel = panels()
    deliver(panel, {"type": "cancel"})
    assert panel.message == "Sign-in cancelled." and panel.status == "signed_out"


# --- concurrency --------------------------------------------------------------------------------------------


def test_messages_from_many_threads_leave_a_consistent_state(emulator, panels, shell):
    users = emulator.credentials["users"]
    panel = panels()
    messages = [
        {"type": "pat", "server": emulator.url, "token": users[0]["pat"]},
        {"type": "pat", "server": emulator.url, "token": users[1]["pat"]},
        {"type": "pat", "server": emulator.url, "token": "f" * 42},
        {"type": "pat", "server": emulator.url, "token": 12},
        {"type": "ready"},
        {"type": "cancel"},
    ] * 4
    start = threading.Barrier(len(messages))

    def send(content):
        start.wait()
        deliver(panel, content)

    threads = [threading.Thread(target=send, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert panel.status == "signed_in" and not panel.busy
    assert_consistent(panel, shell)

    threads = [threading.Thread(target=deliver, args=(panel, m)) for m in
               [{"type": "logout"}, {"type": "pat", "server": emulator.url, "token": users[1]["pat"]}] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert_consistent(panel, shell)


# --- display ------------------------------------------------------------------------------------------------


def test_shown_once_when_login_is_a_cells_last_line(panels, shell, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a))
    panel = panels()
    panel.show()  # login() shows it...
    panel._ipython_display_()  # ...and the cell's displayhook gets it back as the cell's value
    assert len(shown) == 1
    shell.execution_count += 1
    panel._ipython_display_()  # `panel` in a later cell shows it again
    assert len(shown) == 2


# --- remembered sign-ins that need renewing -----------------------------------------------------------------


def remember_dead_pair(emu) -> tuple[str, str]:
    from speckle_nb_auth._credentials import remember
    from speckle_nb_auth._protocol import TokenPair

    token, refresh_token = token_pair(emu)
    remember(emu.url, emu.credentials["users"][0]["id"], TokenPair(token, refresh_token))
    kill_token(emu, token)
    return token, refresh_token


def test_remembered_pair_renewed_at_construction_is_stored_again(emulator, panels, shell, memory_keyring,
                                                                 monkeypatch):
    monkeypatch.setenv("SPECKLE_APP_ID", emulator.credentials["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", emulator.credentials["app_secret"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)  # the app belongs to this server
    token, _ = remember_dead_pair(emulator)
    panel = panels(server=emulator.url)
    assert panel.status == "signed_in" and panel.source == "keyring"
    stored = [pair.token for _, pair in recall(emulator.url)]
    assert stored == [panel.client.token_pair.token] and stored != [token]


def test_remembered_pair_needing_the_browser_is_skipped_without_waiting(emulator, shell, memory_keyring,
                                                                       monkeypatch):
    remember_dead_pair(emulator)
    asked = []
    monkeypatch.setattr(LoginPanel, "send", lambda self, content, buffers=None: asked.append(content))
    panel = LoginPanel(server=emulator.url, shell=shell)  # no view has said "ready": nobody could answer
    try:
        assert panel.status == "signed_out" and asked == []
    finally:
        panel.close()


def test_logging_out_an_environment_sign_in_leaves_speckle_token_working(emulator, panels, shell, monkeypatch):
    """SPECKLE_TOKEN is shared with whatever set it (often automation): log out here does not revoke it."""
    monkeypatch.setenv("SPECKLE_TOKEN", emulator.credentials["pat"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    panel = panels()
    assert panel.source == "environment"
    deliver(panel, {"type": "logout"})
    assert panel.status == "signed_out" and "speckle" not in shell.user_ns
    assert "not revoked" in panel.message
    with Client(emulator.url, emulator.credentials["pat"]) as still:
        assert still.user.name == "Ada Lovelace"


def test_an_oauth_token_refused_for_missing_scopes_is_revoked(emulator, panels, shell):
    token, refresh_token = token_pair(emulator)
    panel = panels(scopes=["streams:write"])
    deliver(panel, {"type": "oauth", "server_url": emulator.url, "token": token, "refresh_token": refresh_token,
                    "app_id": emulator.credentials["app_id"]})
    assert panel.status == "signed_out" and "streams:write" in panel.error
    with pytest.raises(InvalidToken):
        Client(emulator.url, token)
