"""The Client against the emulator over loopback HTTP: validation, GraphQL, scopes, refresh, logout, specklepy."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import httpx
import pytest
from support.speckle import access_code, make_pat, oauth_pair

from speckle_nb_auth import Client
from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._client import direct_refresher
from speckle_nb_auth._errors import InvalidToken, MissingScope, NotSignedIn, RefreshRejected, SpeckleUnreachable
from speckle_nb_auth._protocol import TokenPair
from speckle_nb_auth._transport import call


def connector_pair(emu: Any) -> TokenPair:
    """A token pair of Speckle's public connector app `sca`."""
    verifier = protocol.make_verifier()
    code = access_code(emu, verifier, app_id="sca")
    with httpx.Client() as http:
        return call(http, protocol.exchange_code(emu.url, "sca", "sca", code, verifier))


def revoke_token_only(emu: Any, token: str) -> None:
    """Invalidate a token while its refresh token stays valid (what an expired token looks like)."""
    assert httpx.post(f"{emu.url}/auth/logout", json={"token": token}).status_code == 200


def test_a_pat_gives_a_validated_client(emulator: Any) -> None:
    creds = emulator.credentials
    with Client(emulator.url, creds["pat"]) as client:
        first = creds["users"][0]
        assert (client.user.name, client.user.email) == (first["name"], first["email"])
        assert client.server.url == emulator.url and client.server.name
        assert client.graphql("{ activeUser { id } }")["activeUser"]["id"] == client.user.id
        assert client.http.post("/graphql", json={"query": "{ activeUser { name } }"}).status_code == 200
        shown = repr(client)
        assert first["name"] in shown and creds["pat"][:-4] not in shown and creds["pat"][-4:] in shown
        assert str(client) == shown


def test_invalid_token_is_refused_when_made(emulator: Any) -> None:
    with pytest.raises(InvalidToken, match="settings or log in again") as info:
        Client(emulator.url, "0" * 42)
    assert "0" * 8 not in str(info.value)
    with pytest.raises(NotSignedIn):
        Client(emulator.url, "  ")


def test_unreachable_server_says_so() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SpeckleUnreachable, match="Check the address"):
        Client(f"http://127.0.0.1:{port}", "a" * 42)


def test_missing_scope_names_it(emulator: Any) -> None:
    with Client(emulator.url, emulator.credentials["pat"]) as client:
        with pytest.raises(MissingScope) as info:
            client.graphql("{ activeUser { apiTokens { id } } }")
        assert info.value.scope == "tokens:read"
        assert client.scopes() is None  # a PAT without tokens:read cannot list its own scopes


def test_scopes_of_a_session_token_and_an_app_token(emulator: Any) -> None:
    creds = emulator.credentials
    pair = oauth_pair(emulator)
    with Client(emulator.url, pair.token, app_id=creds["app_id"]) as client:
        assert sorted(client.scopes() or []) == sorted(["profile:read", "profile:email", "streams:read", "users:read"])
    with Client(emulator.url, connector_pair(emulator).token, app_id="sca") as client:
        assert client.scopes() == [
            "streams:read", "streams:write", "profile:read", "profile:email", "users:read", "users:invite"
        ]


def app_in_environment(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = emulator.credentials
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    monkeypatch.setenv("SPECKLE_APP_ID", creds["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", creds["app_secret"])


def test_a_pat_is_never_taken_for_the_environments_app(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PAT holding only profile:read cannot read its own scopes: unknown, not the app's four."""
    app_in_environment(emulator, monkeypatch)
    with Client(emulator.url, make_pat(emulator, ["profile:read"])) as client:
        assert client.scopes() is None
    readable = ["profile:read", "tokens:read"]
    with Client(emulator.url, make_pat(emulator, readable)) as client:
        assert client.scopes() == readable  # the server lists it: a PAT, with exactly these


def test_an_app_token_is_known_from_its_sign_in_only(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app_in_environment(emulator, monkeypatch)
    pair = connector_pair(emulator)
    with Client(emulator.url, pair.token) as client:  # the sign-in that made it did not say: unknown
        assert client.scopes() is None
    with Client(emulator.url, pair.token, app_id="sca") as client:
        assert client.scopes() is not None and "streams:write" in (client.scopes() or [])


def test_refresh_on_invalid_token_then_retire_the_old_pair(emulator: Any) -> None:
    creds = emulator.credentials
    pair = oauth_pair(emulator)
    stored: list[TokenPair] = []
    with httpx.Client() as plain:
        refresher = direct_refresher(plain, emulator.url, creds["app_id"], creds["app_secret"])
        with Client(
            emulator.url, pair.token, pair.refresh_token, refresher=refresher, on_refresh=stored.append
        ) as client:
            revoke_token_only(emulator, pair.token)
            logouts = emulator.requests_seen("/auth/logout")
            assert client.graphql("{ activeUser { name } }")["activeUser"]["name"] == creds["users"][0]["name"]
            assert len(stored) == 1 and stored[0].token != pair.token
            assert client.token_pair == stored[0]
            # the old pair was sent to /auth/logout to retire it, and that left the new pair working
            assert emulator.requests_seen("/auth/logout") == logouts + 1
            assert client.graphql("{ activeUser { id } }")["activeUser"]["id"] == client.user.id


def test_retiring_a_live_old_pair_kills_its_refresh_token(emulator: Any) -> None:
    """What the rotation relies on (speckle-protocol.md section 1.5): logout with the old pair after a refresh."""
    creds = emulator.credentials
    pair = oauth_pair(emulator)
    with httpx.Client() as plain:
        refresher = direct_refresher(plain, emulator.url, creds["app_id"], creds["app_secret"])
        new = refresher(pair)
        assert httpx.post(f"{emulator.url}/auth/logout",
                          json={"token": pair.token, "refreshToken": pair.refresh_token}).status_code == 200
        with pytest.raises(RefreshRejected):
            refresher(pair)
        with Client(emulator.url, new.token) as client:
            assert client.user.id


def test_after_a_refresh_caused_by_the_403_the_old_refresh_token_stays_valid_and_the_log_says_so(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Rotation, honestly: the token the 403 rejected is already gone, Speckle's logout stops at it (400), so the
    retirement cannot reach the old refresh token. It stays valid; a debug line says so, with no secret."""
    creds = emulator.credentials
    pair = oauth_pair(emulator)
    with httpx.Client() as plain:
        refresher = direct_refresher(plain, emulator.url, creds["app_id"], creds["app_secret"])
        with Client(emulator.url, pair.token, pair.refresh_token, refresher=refresher) as client:
            revoke_token_only(emulator, pair.token)
            with caplog.at_level(logging.DEBUG, logger="speckle_nb_auth.client"):
                client.graphql("{ activeUser { id } }")
            new = client.token_pair
        lines = [r.getMessage() for r in caplog.records if r.name == "speckle_nb_auth.client"]
        assert len(lines) == 1 and "could not be retired (logout_failed)" in lines[0], lines
        assert "refresh token stays valid" in lines[0] and emulator.url in lines[0]
        for secret in (pair.token, pair.refresh_token, new.token, new.refresh_token, creds["app_secret"]):
            assert secret and secret not in caplog.text
        still = refresher(pair)  # the old refresh token still refreshes: Speckle's API offers no way to retire it
        assert still.token != new.token
        # what ends it: the user revokes the app's access in Speckle's settings (every token of the app goes)
        revoke = httpx.post(f"{emulator.url}/graphql", headers={"Authorization": f"Bearer {creds['session_token']}"},
                            json={"query": f'mutation {{ appRevokeAccess(appId: "{creds["app_id"]}") }}'})
        assert revoke.json() == {"data": {"appRevokeAccess": True}}
        with pytest.raises(RefreshRejected):
            refresher(pair)


def test_a_refresh_while_the_old_token_lives_retires_the_old_pair(
    emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The case where the retirement works: the old token still exists when the new pair arrives (a refresh
    before Speckle rejected the token), so the logout kills the old pair, its refresh token included."""
    creds = emulator.credentials
    pair = oauth_pair(emulator)
    with httpx.Client() as plain:
        refresher = direct_refresher(plain, emulator.url, creds["app_id"], creds["app_secret"])
        with Client(emulator.url, pair.token, pair.refresh_token, refresher=refresher) as client:
            with caplog.at_level(logging.DEBUG, logger="speckle_nb_auth.client"):
                client._auth.refresh_after(client.token_pair)  # renew before the token is rejected
            assert client.token_pair.token != pair.token
            assert client.graphql("{ activeUser { id } }")["activeUser"]["id"] == client.user.id
        assert not [r for r in caplog.records if r.name == "speckle_nb_auth.client"]
        with pytest.raises(RefreshRejected):
            refresher(pair)
        with pytest.raises(InvalidToken):
            Client(emulator.url, pair.token)


def test_refresh_from_app_credentials_in_the_environment(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = emulator.credentials
    monkeypatch.setenv("SPECKLE_APP_ID", creds["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", creds["app_secret"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)  # the app belongs to this server
    pair = oauth_pair(emulator)
    with Client(emulator.url, pair.token, pair.refresh_token) as client:
        assert client.can_refresh
        revoke_token_only(emulator, pair.token)
        assert client.graphql("{ activeUser { id } }")["activeUser"]["id"] == client.user.id


def test_app_credentials_never_go_to_another_server(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel's SPECKLE_APP_SECRET belongs to SPECKLE_SERVER: a client of any other server never sends it."""
    creds = emulator.credentials
    monkeypatch.setenv("SPECKLE_APP_ID", creds["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", creds["app_secret"])
    monkeypatch.setenv("SPECKLE_SERVER", "https://speckle.example")
    pair = oauth_pair(emulator)
    with Client(emulator.url, pair.token, pair.refresh_token) as client:
        assert not client.can_refresh
        revoke_token_only(emulator, pair.token)
        exchanges = emulator.requests_seen("/auth/token")
        with pytest.raises(InvalidToken):
            client.graphql("{ activeUser { id } }")
        assert emulator.requests_seen("/auth/token") == exchanges


def test_refresh_storm_from_many_threads_refreshes_once(emulator: Any) -> None:
    creds = emulator.credentials
    pair = oauth_pair(emulator)
    with httpx.Client() as plain:
        refresher = direct_refresher(plain, emulator.url, creds["app_id"], creds["app_secret"])
        with Client(emulator.url, pair.token, pair.refresh_token, refresher=refresher) as client:
            revoke_token_only(emulator, pair.token)
            before = emulator.requests_seen("/auth/token")
            names: list[str] = []
            errors: list[BaseException] = []

            def work() -> None:
                try:
                    names.append(client.graphql("{ activeUser { name } }")["activeUser"]["name"])
                except BaseException as err:  # noqa: BLE001 - collected and asserted below
                    errors.append(err)

            threads = [threading.Thread(target=work) for _ in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert not errors and len(names) == 16
            assert emulator.requests_seen("/auth/token") - before == 1


def test_without_a_refresh_path_an_expired_token_says_log_in_again(emulator: Any) -> None:
    pair = oauth_pair(emulator)
    with Client(emulator.url, pair.token, pair.refresh_token) as client:
        assert not client.can_refresh
        revoke_token_only(emulator, pair.token)
        with pytest.raises(InvalidToken, match="log in again"):
            client.graphql("{ activeUser { id } }")


def test_logout_revokes_and_closes(emulator: Any) -> None:
    pair = oauth_pair(emulator)
    forgotten: list[Client] = []
    client = Client(emulator.url, pair.token, pair.refresh_token)
    client.on_logout(forgotten.append)
    client.logout()
    assert forgotten == [client]
    assert "logged out" in repr(client)
    with pytest.raises(NotSignedIn, match="login()"):
        client.graphql("{ activeUser { id } }")
    with pytest.raises(InvalidToken):
        Client(emulator.url, pair.token)
    client.logout()  # twice is harmless


def test_specklepy_adapter(emulator: Any) -> None:
    with Client(emulator.url, emulator.credentials["pat"]) as client:
        sp = client.specklepy()
        assert sp.account.userInfo.name == client.user.name
        assert sp.active_user.get().id == client.user.id


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, speckle_nb_auth\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('ipywidgets', 'anywidget', 'jupyter_server', 'tornado', 'specklepy', 'httpx', 'keyring')]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_token_goes_only_to_its_own_server(emulator: Any) -> None:
    """A URL found in data and fetched with `speckle.http` must not receive the Speckle token."""
    from speckle_nb_auth.emulator import Emulator

    with Emulator() as elsewhere, Client(emulator.url, emulator.credentials["pat"]) as client:
        client.http.post(f"{elsewhere.url}/graphql", json={"query": "{ serverInfo { name } }"})
        assert "authorization" not in elsewhere.last_request_headers("/graphql")
        client.http.post("/graphql", json={"query": "{ serverInfo { name } }"})
        assert emulator.last_request_headers("/graphql")["authorization"].startswith("Bearer ")
