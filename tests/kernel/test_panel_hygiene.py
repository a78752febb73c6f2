"""Token hygiene as the login panel shows it (its kernel half, against the emulator): where a sign-in came from
(a `.env` file's path, never its content) with git's verdict on that file, the rotation reminder, and the
explicit ".env instead of a keyring" choice."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail
from support.hygiene import DAY, write_env
from support.panel import deliver
from support.speckle import make_pat

from speckle_nb_auth.emulator import Emulator


def test_a_dotenv_sign_in_names_the_file_and_what_git_says_of_it(
    emulator: Emulator, repo: Path, panels, monkeypatch: pytest.MonkeyPatch
) -> None:
    pat = emulator.credentials["pat"]
    path = write_env(repo, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=pat)
    monkeypatch.chdir(repo)
    panel = panels()
    assert panel.status == "signed_in" and panel.source == "dotenv"
    assert str(path) in panel.message  # where it came from
    assert ".gitignore" in panel.message  # not ignored: the exact fix
    assert pat not in panel.message and pat[-8:] not in panel.message


def test_a_personal_access_token_100_days_old_gets_the_reminder(emulator: Emulator, panels) -> None:
    pat = make_pat(emulator, ["profile:read", "tokens:read"])
    emulator.advance_clock(100 * DAY)
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": pat})
    assert panel.status == "signed_in"
    assert "100 days old" in panel.message and f"{emulator.url}/settings" in panel.message


def test_without_a_keyring_a_dotenv_is_offered_and_written_only_when_chosen(
    emulator: Emulator, repo: Path, panels, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        monkeypatch.chdir(repo)
        panel = panels(remember=True)
        deliver(panel, {"type": "pat", "server": emulator.url, "token": emulator.credentials["pat"]})
        assert panel.status == "signed_in" and panel.no_keyring
        assert not (repo / ".env").exists()  # never silently
        deliver(panel, {"type": "remember_file"})
    finally:
        keyring.set_keyring(previous)
    written = repo / ".env"
    assert written.exists() and str(written) in panel.message and not panel.error
    assert stat.S_IMODE(os.stat(written).st_mode) == 0o600
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=repo)
    assert ignored.returncode == 0
    assert emulator.credentials["pat"] not in panel.message
