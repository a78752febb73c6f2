"""Token hygiene with real parts: `.env` files in temporary git repositories (a real kernel signs in from one),
git's own verdict on them, the 0600 "remember me" file, rotation reminders for a token the emulator made 100
days ago, and the pre-commit guard run by `pre-commit` itself."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient
from support import REPO, TESTS
from support.cli import cli_env, run_cli
from support.hygiene import DAY, git, write_env
from support.memory_keyring import BACKEND
from support.speckle import make_pat

from speckle_nb_auth import _sources as sources
from speckle_nb_auth._client import Client
from speckle_nb_auth._dotenv import dotenv_notices, find_dotenv, git_state, read_dotenv, remember_in_dotenv
from speckle_nb_auth._errors import ConfigurationError
from speckle_nb_auth._precommit import scan_file, scan_text
from speckle_nb_auth._rotation import rotation_notice, token_age
from speckle_nb_auth.emulator import Emulator

# --- .env as a source --------------------------------------------------------------------------------------


def test_a_dotenv_in_a_git_repository_signs_a_kernel_in(emulator: Emulator, repo: Path, tmp_path: Path) -> None:
    user = emulator.credentials["users"][1]
    write_env(repo, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=user["pat"])
    (repo / ".gitignore").write_text(".env\n")
    notebooks = repo / "notebooks"
    notebooks.mkdir()
    cells = [
        "from speckle_nb_auth import login\npanel = login()",
        "import os\nprint(speckle.user.email)\nprint('SPECKLE_TOKEN' in os.environ, 'SPECKLE_SERVER' in os.environ)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PYTHON_KEYRING_BACKEND": BACKEND,
    }
    NotebookClient(nb, kernel_name="python3", timeout=60).execute(env=env, cwd=str(notebooks))
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert printed.splitlines() == [user["email"], "False False"]  # signed in; the environment untouched
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, saved)
    assert user["pat"] not in saved.read_text()


def test_a_variable_already_in_the_environment_is_never_overridden(
    emulator: Emulator, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = emulator.credentials["users"]
    write_env(repo, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=users[1]["pat"])
    monkeypatch.chdir(repo)
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    monkeypatch.setenv("SPECKLE_TOKEN", users[0]["pat"])
    found = sources.sign_in()
    assert found.candidate.source == "environment" and found.client.user.email == users[0]["email"]
    # A failing environment token does not let the file's stand in for it either.
    monkeypatch.setenv("SPECKLE_TOKEN", "f" * 42)
    assert [c.source for c in sources.candidates()] == ["environment"]
    assert os.environ["SPECKLE_TOKEN"] == "f" * 42


def test_the_dotenv_source_names_the_file_never_its_content(
    emulator: Emulator, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pat = emulator.credentials["users"][1]["pat"]
    path = write_env(repo, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=pat)
    (repo / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(repo / "sub" / "deeper")
    (candidate,) = sources.candidates()
    assert candidate.source == "dotenv" and candidate.path == path
    assert candidate.description == f"the .env file {path}"
    assert pat not in repr(candidate) and pat not in repr(read_dotenv())
    assert sources.default_server() == emulator.url  # SPECKLE_SERVER read from the file too


def test_the_search_stops_at_the_repository_root(tmp_path: Path, repo: Path) -> None:
    write_env(tmp_path, SPECKLE_TOKEN="x")  # above the repository: not the project's
    assert find_dotenv(repo) is None
    loose = tmp_path / "loose" / "child"
    loose.mkdir(parents=True)
    write_env(tmp_path / "loose", SPECKLE_TOKEN="x")
    assert find_dotenv(loose) is None  # outside a repository only the working directory counts
    assert find_dotenv(tmp_path / "loose") == tmp_path / "loose" / ".env"


def test_the_files_token_goes_to_the_files_server_and_the_environments_server_wins(
    emulator: Emulator, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env(repo, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=emulator.credentials["pat"])
    monkeypatch.chdir(repo)
    assert [c.server for c in sources.candidates()] == [emulator.url]
    monkeypatch.setenv("SPECKLE_SERVER", "https://another.example.org")
    problems: list[str] = []
    assert list(sources.candidates(None, problems)) == []  # the environment's server wins over the file's
    assert "the environment wins: the file's token was not used" in problems[0]
    assert list(sources.candidates("https://another.example.org")) == []  # never sent to another server
    assert [c.server for c in sources.candidates(emulator.url)] == [emulator.url]  # asked for by name
    assert sources.default_server() == "https://another.example.org"


def test_status_says_the_sign_in_came_from_the_file(emulator: Emulator, repo: Path, tmp_path: Path) -> None:
    pat = emulator.credentials["users"][1]["pat"]
    path = write_env(repo, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=pat)
    result = run_cli(["status"], env=cli_env(tmp_path), cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"from the .env file {path}" in result.stdout
    assert "is not ignored by git" in result.stdout and ".gitignore" in result.stdout
    assert pat not in result.stdout + result.stderr


# --- kept out of git -----------------------------------------------------------------------------------------


def test_an_unignored_dotenv_gets_the_gitignore_line(repo: Path) -> None:
    path = write_env(repo, SPECKLE_TOKEN="t")
    assert git_state(path) == "unignored"
    (notice,) = dotenv_notices(path)
    assert f"add the line .env to {repo / '.gitignore'}" in notice
    (repo / ".gitignore").write_text(".env\n")
    assert git_state(path) == "ignored" and dotenv_notices(path) == []


def test_a_staged_dotenv_gets_git_rm_cached(repo: Path) -> None:
    path = write_env(repo, SPECKLE_TOKEN="t")
    git(repo, "add", ".env")
    assert git_state(path) == "staged"
    (notice,) = dotenv_notices(path)
    assert "git rm --cached -- .env" in notice and ".gitignore" in notice


def test_a_committed_dotenv_means_a_leaked_token(repo: Path) -> None:
    sub = repo / "config"
    sub.mkdir()
    path = write_env(sub, SPECKLE_TOKEN="t")
    git(repo, "add", "config/.env")
    git(repo, "commit", "-q", "-m", "oops")
    assert git_state(path) == "committed"
    (notice,) = dotenv_notices(path)
    assert "leaked" in notice and "revoke" in notice and "git rm --cached -- config/.env" in notice
    # Untracked and ignored afterwards, it is still in the history.
    git(repo, "rm", "-q", "--cached", "config/.env")
    (repo / ".gitignore").write_text(".env\n")
    git(repo, "commit", "-q", "-am", "untrack")
    (notice,) = dotenv_notices(path)
    assert "leaked" in notice and "git rm" not in notice


def test_a_dotenv_outside_any_repository_gets_no_notice(tmp_path: Path) -> None:
    assert dotenv_notices(write_env(tmp_path, SPECKLE_TOKEN="t")) == []


def test_revoke_takes_a_leaked_dotenv_on_stdin(emulator: Emulator, repo: Path, tmp_path: Path) -> None:
    pat = emulator.credentials["users"][1]["pat"]
    path = write_env(repo, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=pat)
    result = run_cli(["revoke"], env=cli_env(tmp_path), cwd=tmp_path, stdin=path.read_text())
    assert result.returncode == 0 and f"Revoked: {emulator.url}" in result.stdout, result.stderr
    assert httpx.post(f"{emulator.url}/graphql", json={"query": "{ activeUser { id } }"},
                      headers={"Authorization": f"Bearer {pat}"}).status_code == 403


# --- "remember me" in a .env file ------------------------------------------------------------------------------


def test_the_remembered_dotenv_is_0600_and_ignored_by_git(
    emulator: Emulator, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pat = emulator.credentials["users"][1]["pat"]
    (repo / ".gitignore").write_text("*.pyc")  # no newline at the end
    old = write_env(repo, OTHER="kept", SPECKLE_TOKEN="old")
    monkeypatch.chdir(repo)
    path = remember_in_dotenv(emulator.url, pat)
    assert path == old.resolve()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=repo).returncode == 0
    assert (repo / ".gitignore").read_text() == "*.pyc\n.env\n"
    text = path.read_text()
    assert "OTHER=kept" in text and "SPECKLE_TOKEN=old" not in text
    assert sources.sign_in().client.user.email == emulator.credentials["users"][1]["email"]
    remember_in_dotenv(emulator.url, pat)  # again: nothing added twice
    assert (repo / ".gitignore").read_text() == "*.pyc\n.env\n"


def test_the_remembered_dotenv_refuses_a_tracked_file(repo: Path) -> None:
    path = write_env(repo, OTHER="x")
    git(repo, "add", ".env")
    with pytest.raises(ConfigurationError) as caught:
        remember_in_dotenv("https://app.speckle.systems", "t", path)
    assert "tracked by git" in caught.value.message
    assert "SPECKLE_TOKEN" not in path.read_text()


def test_the_remembered_dotenv_outside_a_repository_is_0600(tmp_path: Path) -> None:
    path = remember_in_dotenv("https://app.speckle.systems", "t", tmp_path / ".env")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not (tmp_path / ".gitignore").exists()


# --- rotation --------------------------------------------------------------------------------------------------


def test_a_token_made_100_days_ago_gets_the_rotation_reminder(emulator: Emulator, tmp_path: Path) -> None:
    pat = make_pat(emulator, ["profile:read", "tokens:read"])
    emulator.advance_clock(100 * DAY)
    with Client(emulator.url, pat) as client:
        age = token_age(client)
        assert age is not None and age.age.days == 100 and age.expires_at is None
        notice = rotation_notice(client)
        assert notice is not None and "100 days old" in notice and f"{emulator.url}/settings" in notice
        assert "revoke" in notice and pat not in notice
        assert rotation_notice(client, max_age_days=120) is None
    result = run_cli(["status"], env=cli_env(tmp_path, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=pat), cwd=tmp_path)
    assert result.returncode == 0
    assert "100 days ago" in result.stdout and "100 days old" in result.stdout
    quiet = cli_env(tmp_path, SPECKLE_SERVER=emulator.url, SPECKLE_TOKEN=pat, SPECKLE_TOKEN_MAX_AGE_DAYS="365")
    assert "rotate" not in run_cli(["status"], env=quiet, cwd=tmp_path).stdout


def test_a_token_about_to_expire_gets_the_reminder(emulator: Emulator) -> None:
    pat = make_pat(emulator, ["profile:read", "tokens:read"], lifespan_ms=int(10 * DAY * 1000))
    with Client(emulator.url, pat) as client:
        notice = rotation_notice(client)
    assert notice is not None and "expires in" in notice


def test_no_reminder_for_a_fresh_token_one_without_tokens_read_or_an_app_token(emulator: Emulator) -> None:
    with Client(emulator.url, make_pat(emulator, ["profile:read", "tokens:read"])) as fresh:
        assert rotation_notice(fresh) is None and token_age(fresh) is not None
    emulator.advance_clock(100 * DAY)
    with Client(emulator.url, emulator.credentials["pat"]) as unreadable:
        assert token_age(unreadable) is None and rotation_notice(unreadable) is None


# --- the pre-commit guard ----------------------------------------------------------------------------------------


def notebook(output: str) -> str:
    cell = nbformat.v4.new_code_cell("import os\nprint(os.environ['SPECKLE_TOKEN'])")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Demo"), cell]))


def test_the_guard_names_file_line_and_cell_never_the_token(tmp_path: Path) -> None:
    token = os.urandom(21).hex()
    bad = tmp_path / "bad.ipynb"
    bad.write_text(notebook(token + "\n"))
    (finding,) = scan_file(bad)
    assert finding.where == "cell 2 output"
    assert bad.read_text().splitlines()[finding.line - 1].count(token) == 1
    assert token not in str(finding)
    code = tmp_path / "script.py"
    sha256 = os.urandom(32).hex()
    code.write_text(f'TOKEN = "{token}"\nSHA = "{sha256}"\nOK = "{token}"  # speckle-token-guard: allow\n')
    assert [f.line for f in scan_file(code)] == [1]
    assert scan_file(tmp_path / "missing.py") == []


# A token as real outputs show it, each way hidden from a scan of the file's text: after "\n" in an error's
# message, after "\t", and right after a colour code in a verbose traceback's locals.
# (No failing line names os.environ: IPython 8.0's verbose traceback shows a dotted name's whole value, quoted.)
LEAKS = {
    "newline": "raise ValueError('the server refused:\\n' + leak())",
    "tab": "raise ValueError('token:\\t' + leak())",
    "colour": "%xmode Verbose\ndef use():\n    raise RuntimeError('\\x1b[1;31m' + leak())\nuse()",
}


@pytest.mark.parametrize("way", sorted(LEAKS))
def test_the_guard_finds_a_token_behind_json_escapes_in_a_notebook_really_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    token = os.urandom(21).hex()
    monkeypatch.setenv("LEAK", token)
    leak = "import os\ndef leak():\n    return os.environ['LEAK']"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(leak), nbformat.v4.new_code_cell(LEAKS[way])])
    NotebookClient(nb, kernel_name="python3", timeout=60, allow_errors=True).execute()
    path = tmp_path / f"{way}.ipynb"
    nbformat.write(nb, path)
    text = path.read_text()
    assert token in text and list(scan_text(text)) == []  # the blind spot: the file's text alone hides it
    findings = scan_file(path)
    assert findings and {f.where for f in findings} == {"cell 2 output"}, findings
    assert all(token in text.splitlines()[f.line - 1] and token not in str(f) for f in findings)


def hook_config(venv_bin: Path) -> str:
    """The shipped hook, as a local hook that runs in this venv (pre-commit would otherwise install the package
    with all its dependencies into an environment of its own)."""
    import yaml  # pre-commit's own dependency

    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "speckle-token-guard" and hook["language"] == "python"
    hook = {**hook, "language": "system", "entry": hook["entry"].replace("python", str(venv_bin / "python"), 1)}
    return yaml.safe_dump({"repos": [{"repo": "local", "hooks": [hook]}]})


def test_pre_commit_refuses_a_notebook_with_a_token_in_an_output(repo: Path, tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    pre_commit = shutil.which("pre-commit", path=str(venv_bin)) or "pre-commit"
    (repo / ".pre-commit-config.yaml").write_text(hook_config(venv_bin))
    token = os.urandom(21).hex()
    (repo / "leaky.ipynb").write_text(notebook(token + "\n"))
    (repo / "clean.ipynb").write_text(notebook("Signed in as Ada\n"))
    (repo / ".env").write_text(f"SPECKLE_TOKEN={token}\n")
    git(repo, "add", "-f", ".pre-commit-config.yaml", "leaky.ipynb", "clean.ipynb", ".env")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def run(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([pre_commit, "run", "--files", *files], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=120)

    refused = run("leaky.ipynb", ".env")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "leaky.ipynb:" in refused.stdout and "(cell 2 output)" in refused.stdout and ".env:1" in refused.stdout
    assert token not in refused.stdout + refused.stderr
    passed = run("clean.ipynb")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # And as the commit hook it is meant to be: the commit does not happen.
    subprocess.run([pre_commit, "install"], cwd=repo, env=env, check=True, capture_output=True)
    commit = subprocess.run(["git", "commit", "-q", "-m", "add notebooks"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=120)
    assert commit.returncode != 0 and token not in commit.stdout + commit.stderr
    assert json.loads((repo / "leaky.ipynb").read_text())  # the file itself is left as it was
    assert git(repo, "log", "--format=%s").stdout.splitlines() == ["start"]


def test_the_shipped_hook_installs_and_runs_as_pre_commit_installs_it(repo: Path, tmp_path: Path) -> None:
    """`pre-commit try-repo` builds the hook's environment from this repository (`language: python`), as a
    project that lists the hook in its .pre-commit-config.yaml gets it."""
    pre_commit = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or "pre-commit"
    token = os.urandom(21).hex()
    (repo / "leaky.ipynb").write_text(notebook(token + "\n"))
    git(repo, "add", "leaky.ipynb")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    run = subprocess.run([pre_commit, "try-repo", str(REPO), "speckle-token-guard", "--files", "leaky.ipynb"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "leaky.ipynb:" in run.stdout and "(cell 2 output)" in run.stdout and token not in run.stdout


def test_expiry_counts_from_creation(emulator: Emulator) -> None:
    pat = make_pat(emulator, ["profile:read", "tokens:read"], lifespan_ms=int(30 * DAY * 1000))
    emulator.advance_clock(20 * DAY)
    with Client(emulator.url, pat) as client:
        age = token_age(client)
        assert age is not None and age.expires_at is not None
        assert (age.expires_at - age.created_at).days == 30
        assert "(in 10 days)" in age.describe() or "(in 9 days)" in age.describe()
        notice = rotation_notice(client)
    assert notice is not None and "expires in" in notice


def test_the_remembered_dotenv_refuses_a_work_tree_when_git_is_missing(
    repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_git = tmp_path / "bin-without-git"
    no_git.mkdir()
    monkeypatch.setenv("PATH", str(no_git))
    with pytest.raises(ConfigurationError, match="git is not installed"):
        remember_in_dotenv("http://127.0.0.1:1", "t" * 42, repo / ".env")
    assert not (repo / ".env").exists()
