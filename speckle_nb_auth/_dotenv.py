"""`.env` files: a source of `SPECKLE_TOKEN`/`SPECKLE_SERVER`, the checks that keep them out of git, and the
"remember me" file for machines without a keyring.

The file read is the nearest `.env` from the working directory up to the root of the git repository holding it
(outside a repository: the working directory's only). Only files and folders this user owns count: a `.env` or
`.git` another user of the machine planted above the work folder is skipped and said. It is parsed with
python-dotenv and never loaded into `os.environ`, so it never overrides a variable already set there;
`SPECKLE_TOKEN` in the environment wins.

Whether git would publish the file is asked of git itself (`git ls-files`, `git log`, `git check-ignore`), and
each answer comes with the exact fix. Messages name the file's path, never its content.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ._errors import ConfigurationError

__all__ = [
    "DotenvSettings",
    "GitState",
    "dotenv_notices",
    "find_dotenv",
    "forget_in_dotenv",
    "git_state",
    "read_dotenv",
    "remember_in_dotenv",
    "saved_by_login",
    "skipped_dotenvs",
]

GitState = Literal["outside", "ignored", "unignored", "staged", "committed"]
_NAME = ".env"
_KEYS = ("SPECKLE_TOKEN", "SPECKLE_SERVER")
# A repository's configuration can name programs git runs (a signature verifier, an fsmonitor, a pager, hooks):
# these queries run none of them, and read no system-wide configuration (which may say safe.directory=*).
_GIT = (
    "git", "--no-pager",
    "-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "core.pager=cat",
    "-c", "log.showSignature=false", "-c", "gpg.program=false", "-c", "diff.external=",
    "-c", "core.sshCommand=false", "-c", "protocol.allow=never",
)
_GIT_ENVIRONMENT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0",
                    "GIT_OPTIONAL_LOCKS": "0"}
_GIT_TIMEOUT = 10.0


def _owned(path: Path) -> bool:
    """Whether this user owns `path` (git's `safe.directory` rule): a file or folder another user of the machine
    could have planted is never trusted. Systems without uids (Windows) own everything."""
    if not hasattr(os, "geteuid"):
        return True
    try:
        return path.lstat().st_uid == os.geteuid()
    except OSError:
        return False


@dataclass(frozen=True)
class _Search:
    found: Path | None
    skipped: tuple[str, ...] = ()


def _search(start: Path | str | None) -> _Search:
    """Walk from `start` up to the first folder holding a `.git` of this user's (the repository's root), or
    outside a repository take `start`'s own `.env` only. The walk stops below a folder owned by someone else,
    and a `.env` or `.git` another user owns is skipped, with the reason."""
    try:
        folder = Path(start if start is not None else os.getcwd()).resolve()
    except OSError:  # a working directory that was deleted
        return _Search(None)
    skipped: list[str] = []
    walk: list[Path] = []
    root: Path | None = None
    for candidate in (folder, *folder.parents):
        if candidate != folder and not _owned(candidate):
            break  # above here another user decides what is in these folders
        walk.append(candidate)
        git = candidate / ".git"
        if git.exists() or git.is_symlink():
            if _owned(git):
                root = candidate
                break
            skipped.append(f"{git} belongs to another user of this machine, so it was not taken as your "
                           "repository's root.")
    for candidate in walk if root is not None else walk[:1]:
        path = candidate / _NAME
        if path.is_file():
            if _owned(path):
                return _Search(path, tuple(skipped))
            skipped.append(f"{path} belongs to another user of this machine and was skipped: a .env file is read "
                           "only when you own it.")
    return _Search(None, tuple(skipped))


def find_dotenv(start: Path | str | None = None) -> Path | None:
    """The nearest `.env` file of this user's from `start` (default: the working directory) up to its
    repository's root."""
    return _search(start).found


def skipped_dotenvs(start: Path | str | None = None) -> tuple[str, ...]:
    """Why a `.env` or `.git` on the way was not trusted (another user owns it), one sentence each."""
    return _search(start).skipped


@dataclass(frozen=True)
class DotenvSettings:
    path: Path
    token: str | None = field(default=None, repr=False)
    server: str | None = None


def read_dotenv(start: Path | str | None = None) -> DotenvSettings | None:
    """`SPECKLE_TOKEN` and `SPECKLE_SERVER` of the nearest `.env` (None when there is none, or it sets neither)."""
    path = find_dotenv(start)
    if path is None:
        return None
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError):
        return None
    token = (values.get("SPECKLE_TOKEN") or "").strip() or None
    server = (values.get("SPECKLE_SERVER") or "").strip() or None
    if token is None and server is None:
        return None
    return DotenvSettings(path, token, server)


# --- git ------------------------------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    environment = {**os.environ, **_GIT_ENVIRONMENT}
    try:
        return subprocess.run(  # noqa: S603 - fixed git arguments, paths passed after "--"
            [*_GIT, *args], cwd=root, capture_output=True, text=True, timeout=_GIT_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL, env=environment,
        )
    except (OSError, subprocess.SubprocessError):  # no git installed, or it hung
        return None


def _nearest_git(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        git = candidate / ".git"
        if git.exists() or git.is_symlink():
            return git
    return None


def _own_repository(folder: Path) -> bool:
    """Whether the nearest `.git` from `folder` up is this user's, in a folder of theirs: git is asked nothing
    about a repository another user could have planted (or configured) above the work folder."""
    git = _nearest_git(folder)
    return git is not None and _owned(git) and _owned(git.parent)


def _work_tree(path: Path) -> tuple[Path, str] | None:
    """The work tree's root and the file's path in it, as git sees them; None outside one (or without git), and
    in a repository that is not this user's."""
    if not _own_repository(path.parent.resolve()):
        return None
    found = _git(path.parent, "rev-parse", "--show-toplevel")
    if found is None or found.returncode != 0 or not found.stdout.strip():
        return None
    root = Path(found.stdout.strip()).resolve()
    try:
        return root, path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def git_state(path: Path | str) -> GitState:
    """What git would do with the file: `committed` (in some commit: treat its token as leaked), `staged`
    (in the index, not yet committed), `unignored` (`git add` would take it), `ignored`, or `outside` any
    work tree (git absent included)."""
    place = _work_tree(Path(path))
    if place is None:
        return "outside"
    root, relative = place
    history = _git(root, "log", "--all", "--no-show-signature", "--format=%h", "-1", "--", relative)
    if history is not None and history.returncode == 0 and history.stdout.strip():
        return "committed"
    tracked = _git(root, "ls-files", "--error-unmatch", "--", relative)
    if tracked is not None and tracked.returncode == 0:
        return "staged"
    ignored = _git(root, "check-ignore", "-q", "--", relative)
    if ignored is not None and ignored.returncode == 0:
        return "ignored"
    return "unignored" if ignored is not None and ignored.returncode == 1 else "outside"


def dotenv_notices(path: Path | str) -> list[str]:
    """What to tell the user about a `.env` holding a token, with the exact fix; empty when git ignores it."""
    file = Path(path)
    state = git_state(file)
    if state in ("outside", "ignored"):
        return []
    place = _work_tree(file)
    assert place is not None  # a state other than "outside" came from a work tree
    root, relative = place
    ignore = f"add the line {_ignore_line(relative)} to {root / '.gitignore'}"
    if state == "unignored":
        return [f"{file} is not ignored by git, so `git add` would publish the token in it: {ignore}."]
    if state == "staged":
        return [
            f"{file} is staged to be committed with the token in it: run `git rm --cached -- {relative}` in "
            f"{root}, then {ignore}."
        ]
    tracked = _git(root, "ls-files", "--error-unmatch", "--", relative)
    untrack = (
        f"run `git rm --cached -- {relative}` in {root} and {ignore}"
        if tracked is not None and tracked.returncode == 0
        else ignore
    )
    return [
        f"{file} was committed to git, so the token in it must be treated as leaked (it stays in the "
        f"history, and in every clone or push). Revoke it now: python -m speckle_nb_auth revoke < {file} "
        f"(or speckle_nb_auth.revoke(token, server) in Python), make a new one, and {untrack}."
    ]


def _ignore_line(relative: str) -> str:
    """`.env` ignores every .env file of the repository, which is what one wants; other names exactly."""
    return _NAME if relative.rsplit("/", 1)[-1] == _NAME else f"/{relative}"


# --- "remember me" without a keyring ---------------------------------------------------------------------------


def _assignment(key: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*(export\s+)?{key}\s*=")


# The line `remember_in_dotenv` writes above the sign-in it saved: `logout` revokes only a token it finds under
# it (one the person put in the file is theirs, and may be in use elsewhere).
MADE_HERE = "# A sign-in saved by `python -m speckle_nb_auth login --env-file`: `logout` revokes it and removes it."


def saved_by_login(path: Path | str) -> bool:
    """Whether the `.env` file's sign-in was saved by `login --env-file` (its line is in the file)."""
    try:
        return MADE_HERE in Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return False


def forget_in_dotenv(path: Path | str) -> None:
    """Remove the sign-in `remember_in_dotenv` saved (its line, `SPECKLE_SERVER`, `SPECKLE_TOKEN`); other lines
    stay. The file is removed when nothing else was in it."""
    target = Path(path)
    kept = [line for line in target.read_text(encoding="utf-8").splitlines()
            if line != MADE_HERE and not any(_assignment(key).match(line) for key in _KEYS)]
    if not any(line.strip() for line in kept):
        target.unlink()
        return
    _write_private(target, kept)


def remember_in_dotenv(server: str, token: str, path: Path | str | None = None) -> Path:
    """Save a sign-in as `SPECKLE_TOKEN`/`SPECKLE_SERVER` in a `.env` file readable only by its owner (0600)
    that git ignores: `path`, else the nearest `.env`, else `.env` in the working directory. Inside a git work
    tree the file is made ignored first (a line in the repository's `.gitignore`); a file git already tracks
    is refused. Other lines of an existing file are kept. Only call this as the user's explicit choice: the
    keyring is the safer place wherever one works."""
    target = Path(path) if path is not None else (find_dotenv() or Path.cwd() / _NAME)
    target = target.resolve()
    _ensure_ignored(target)
    kept: list[str] = []
    if target.exists():
        kept = [
            line for line in target.read_text(encoding="utf-8").splitlines()
            if line != MADE_HERE and not any(_assignment(key).match(line) for key in _KEYS)
        ]
    _write_private(target, [*kept, MADE_HERE, f"SPECKLE_SERVER={server}", f"SPECKLE_TOKEN={token}"])
    return target


def _write_private(target: Path, lines: list[str]) -> None:
    """Replace `target` with `lines`, readable only by its owner (0600), all at once."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _ensure_ignored(target: Path) -> None:
    place = _work_tree(target) if target.parent.is_dir() else None
    if place is None:
        git = _nearest_git(target.parent)
        if git is not None:  # a work tree whose git cannot be asked whether it would publish the file
            why = "git is not installed" if shutil.which("git") is None else "it is not your repository"
            raise ConfigurationError(
                f"{target} is inside the git work tree of {git.parent}, and whether git would publish it cannot "
                f"be checked ({why}): nothing was saved. Choose a file outside that folder."
            )
        return
    state = git_state(target)
    if state in ("staged", "committed"):
        raise ConfigurationError(
            f"{target} is tracked by git: a token written there would be published. Choose another file, or "
            f"untrack it first (git rm --cached)."
        )
    if state == "ignored":
        return
    root, relative = place
    gitignore = root / ".gitignore"
    existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    with gitignore.open("a", encoding="utf-8") as handle:
        handle.write(f"{separator}{_ignore_line(relative)}\n")
    if git_state(target) != "ignored":
        raise ConfigurationError(
            f"{target} stays visible to git even with a line in {gitignore} (another rule un-ignores it): "
            "nothing was saved. Choose another file."
        )
