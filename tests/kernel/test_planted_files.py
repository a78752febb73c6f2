"""`.env` files and git repositories planted by another user of the machine, as the outside security review
planted them (as `nobody`, through `setpriv`): above the victim's work folder, a `.env` naming the attacker's
token and a `.git` whose configuration runs a program. The victim (root here) must trust neither, and git must
run no program that a repository's configuration names, even in the victim's own repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.another_user import NOBODY, run_as_nobody
from support.cli import cli_env, run_cli
from support.hygiene import git, write_env

from speckle_nb_auth import _credentials as credentials
from speckle_nb_auth import _sources as sources
from speckle_nb_auth._dotenv import dotenv_notices, find_dotenv, git_state, remember_in_dotenv
from speckle_nb_auth._errors import ConfigurationError
from speckle_nb_auth.emulator import Emulator

# A program a repository's configuration names: it leaves a mark when git runs it. As a signer it makes a
# signature that git accepts, so the repository can hold a signed commit for `log.showSignature` to verify.
EVIL = """#!/bin/sh
case "$*" in
  *-bsau*) cat >/dev/null; printf '\\n[GNUPG:] SIG_CREATED D 1 8 00 0 X\\n' >&2
           printf -- '-----BEGIN PGP SIGNATURE-----\\n\\nAAAA\\n-----END PGP SIGNATURE-----\\n' ;;
  *) touch {mark} ;;
esac
exit 0
"""


@pytest.fixture
def place() -> Iterator[Path]:
    """A folder every user can reach (pytest's own is root's alone)."""
    made = Path(tempfile.mkdtemp(prefix="planted-"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made, ignore_errors=True)


@pytest.fixture
def evil(place: Path) -> tuple[Path, Path]:
    """(the program, the mark it leaves when run)."""
    mark = place / "ran"
    program = place / "evil"
    program.write_text(EVIL.format(mark=mark))
    program.chmod(0o755)
    return program, mark


def as_nobody_write(path: Path, text: str) -> None:
    done = run_as_nobody(["sh", "-c", 'cat > "$0"', str(path)], input=text)
    assert done.returncode == 0, done.stderr
    assert path.stat().st_uid == NOBODY


def signed_repository(root: Path, program: Path) -> None:
    """A repository whose one commit (of `.env`) is signed, configured to verify signatures with `program`,
    to run it as an fsmonitor and as a pager, from its hooks folder too."""
    git(root, "init", "-q", "-b", "main")
    (root / ".env").write_text("SPECKLE_TOKEN=planted\n")
    git(root, "add", ".env")
    git(root, "-c", "user.name=Eve", "-c", "user.email=eve@example.com", "-c", f"gpg.program={program}",
        "commit", "-q", "-S", "-m", "signed")
    for key, value in (("log.showSignature", "true"), ("gpg.program", str(program)),
                       ("core.fsmonitor", str(program)), ("core.pager", str(program))):
        git(root, "config", key, value)


def test_a_planted_dotenv_and_git_above_the_work_folder_are_skipped_and_said(
    emulator: Emulator, place: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attacker = emulator.credentials["users"][1]
    git(place, "init", "-q")  # the victim's own repository holds it all: the walk would go up to it
    shared = place / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: everyone may add files, the folder is root's
    assert run_as_nobody(["mkdir", str(shared / ".git")]).returncode == 0
    as_nobody_write(shared / ".env", f"SPECKLE_SERVER={emulator.url}\nSPECKLE_TOKEN={attacker['pat']}\n")
    work = shared / "victim-work"
    work.mkdir()
    for key in ("SPECKLE_TOKEN", "SPECKLE_SERVER"):
        monkeypatch.delenv(key, raising=False)
    env = cli_env(tmp_path)
    env.pop("SPECKLE_TOKEN", None)
    env.pop("SPECKLE_SERVER", None)
    status = run_cli(["status", emulator.url], env=env, cwd=work)
    assert status.returncode == 1 and attacker["name"] not in status.stdout, status.stdout
    assert f"{shared / '.env'} belongs to another user of this machine and was skipped" in status.stdout
    assert f"{shared / '.git'} belongs to another user of this machine" in status.stdout
    assert attacker["pat"] not in status.stdout + status.stderr
    monkeypatch.chdir(work)
    assert find_dotenv() is None
    assert sources.default_server() == credentials.DEFAULT_SERVER  # `revoke < leaked` goes nowhere planted

    # A folder another user owns ends the walk: nothing in or above it counts, even a file of the victim's.
    theirs = place / "theirs"
    theirs.mkdir()
    write_env(theirs, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=attacker["pat"])
    os.chown(theirs, NOBODY, NOBODY)
    (theirs / "victim-work").mkdir()
    assert find_dotenv(theirs / "victim-work") is None


def test_git_is_not_asked_about_a_repository_another_user_planted(
    place: Path, evil: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    program, mark = evil
    planted = place / "shared"
    planted.mkdir()
    signed_repository(planted, program)
    assert subprocess.run(["git", "log", "-1", "--format=%h"], cwd=planted, capture_output=True,
                          check=True).returncode == 0 and mark.exists()  # the trap works: plain git runs it
    mark.unlink()
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(planted)], check=True)
    planted.chmod(0o1777)
    work = planted / "victim-work"
    work.mkdir()
    mine = write_env(work, SPECKLE_TOKEN="t")
    gitconfig = place / "gitconfig"
    gitconfig.write_text("[safe]\n\tdirectory = *\n")  # common in containers: git itself then trusts any owner
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    assert git_state(mine) == "outside" and dotenv_notices(mine) == []
    with pytest.raises(ConfigurationError, match="it is not your repository"):
        remember_in_dotenv("http://127.0.0.1:1", "t", mine)  # cannot ask git: refuse rather than publish
    assert not mark.exists()


def test_git_runs_no_program_a_repositorys_configuration_names(
    place: Path, evil: tuple[Path, Path]
) -> None:
    program, mark = evil
    repo = place / "project"
    repo.mkdir()
    signed_repository(repo, program)
    hooks = repo / ".git" / "hooks"
    for hook in ("post-index-change", "reference-transaction"):
        shutil.copy(program, hooks / hook)
    mark.unlink(missing_ok=True)
    path = repo / ".env"
    assert git_state(path) == "committed"
    assert any("leaked" in notice for notice in dotenv_notices(path))
    assert not mark.exists()
