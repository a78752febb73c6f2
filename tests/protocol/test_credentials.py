"""Tokens from the environment, the keyring (an in-memory backend; and none at all) and desktop accounts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from speckle_nb_auth import _credentials as credentials
from speckle_nb_auth._desktop import desktop_accounts, speckle_data_dir
from speckle_nb_auth._protocol import TokenPair

SERVER = "https://speckle.example"
PAIR = TokenPair("a" * 42, "b" * 42)


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials.from_environment() is None
    monkeypatch.setenv("SPECKLE_TOKEN", "t" * 42)
    found = credentials.from_environment()
    assert found is not None and found.server == "https://app.speckle.systems"
    monkeypatch.setenv("SPECKLE_SERVER", "speckle.example/")
    assert credentials.from_environment(SERVER) == credentials.EnvironmentCredential(SERVER, "t" * 42)
    assert credentials.from_environment("https://other.example") is None
    assert "t" * 8 not in repr(found)


def test_keyring_one_entry_per_server_and_user(memory_keyring) -> None:  # type: ignore[no-untyped-def]
    other = TokenPair("c" * 42, None)
    credentials.remember(SERVER, "user1", PAIR)
    credentials.remember(SERVER, "user2", other)
    credentials.remember("https://other.example", "user1", other)
    assert credentials.recall(SERVER) == [("user2", other), ("user1", PAIR)]
    credentials.remember(SERVER, "user1", PAIR)
    assert [u for u, _ in credentials.recall(SERVER)] == ["user1", "user2"]
    credentials.forget(SERVER, "user1")
    assert credentials.recall(SERVER) == [("user2", other)]
    assert credentials.recall("https://other.example") == [("user1", other)]
    services = {service for service, _ in memory_keyring.dump()}
    assert services == {f"speckle-nb-auth:{SERVER}", "speckle-nb-auth:https://other.example"}


def test_no_keyring_says_so_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(credentials.KeyringUnavailable) as info:
            credentials.remember(SERVER, "user1", PAIR)
        assert "this session" in str(info.value) and "SPECKLE_TOKEN" in str(info.value)
        assert credentials.recall(SERVER) == []
        credentials.forget(SERVER, "user1")
    finally:
        keyring.set_keyring(previous)
    assert list(tmp_path.iterdir()) == []


def account(user: str, server: str = SERVER, default: bool = False, token: str = "d" * 42) -> dict[str, object]:
    return {"id": f"acc-{user}", "isDefault": default, "token": token, "refreshToken": "e" * 42,
            "serverInfo": {"name": "Example", "url": server},
            "userInfo": {"id": user, "name": user.title(), "email": f"{user}@example.com"}}


def test_desktop_accounts_from_sqlite_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECKLE_USERDATA_PATH", str(tmp_path))
    folder = tmp_path / "Speckle"
    assert speckle_data_dir() == folder
    (folder / "Accounts").mkdir(parents=True)
    with sqlite3.connect(folder / "Accounts.db") as db:
        db.execute("CREATE TABLE objects(hash TEXT PRIMARY KEY, content TEXT)")
        db.execute("INSERT INTO objects VALUES (?, ?)", ("h1", json.dumps(account("ada"))))
        db.execute("INSERT INTO objects VALUES (?, ?)", ("h2", json.dumps(account("grace", default=True))))
        db.execute("INSERT INTO objects VALUES (?, ?)", ("h3", "{not json"))
    db.close()
    (folder / "Accounts" / "x.json").write_text(json.dumps(account("linus", server="https://other.example/")))
    (folder / "Accounts" / "dup.json").write_text(json.dumps(account("ada")))
    (folder / "Accounts" / "bad.json").write_text(json.dumps({"token": "x"}))
    found = desktop_accounts()
    assert [a.user_id for a in found] == ["grace", "ada", "linus"]
    assert found[0].is_default and found[0].label == "Grace <grace@example.com> on Example"
    assert [a.user_id for a in desktop_accounts("other.example")] == ["linus"]
    assert all("d" * 8 not in repr(a) for a in found)


def test_desktop_accounts_missing_or_unreadable(tmp_path: Path) -> None:
    assert desktop_accounts(data_dir=tmp_path / "none") == []
    (tmp_path / "Accounts.db").write_text("this is not sqlite")
    assert desktop_accounts(data_dir=tmp_path) == []
