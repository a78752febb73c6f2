"""The terminal login end to end: the CLI runs as a subprocess against the emulator, an HTTP client follows the
printed address as Speckle's web frontend and the browser would, and nothing it prints holds a secret."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from support.cli import Running, cli_env, run_cli
from support.processes import free_loopback_port, poll, signal_another_thread
from support.speckle import consent, follow

import speckle_nb_auth
from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._errors import InvalidToken, LogoutFailed
from speckle_nb_auth._transport import call
from speckle_nb_auth.emulator import Emulator


@pytest.fixture(autouse=True)
def _no_command_left_running() -> Iterator[None]:
    yield
    Running.stop_all()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(connector_redirect_url=f"http://localhost:{free_loopback_port()}") as emulator:
        yield emulator


def is_sign_in_url(emu: Emulator) -> object:
    return lambda line: line.startswith(f"{emu.url}/authn/verify/sca/")


def assert_no_secrets(emu: Emulator, tmp_path: Path, *outputs: str) -> None:
    secrets = [s for s in emu.issued_secrets() if len(s) >= 20]  # `sca`'s public secret is in every URL
    keyring = tmp_path / "keyring.json"
    if keyring.exists():
        for _service, _user, value in json.loads(keyring.read_text()):
            if value.startswith("{"):
                secrets += [v for v in json.loads(value).values() if v]
    assert secrets
    for text in outputs:
        for secret in secrets:
            assert secret not in text


def whoami(emu: Emulator, token: str) -> protocol.WhoAmI:
    with httpx.Client() as http:
        return call(http, protocol.whoami(emu.url, token))


def remembered_tokens(tmp_path: Path) -> list[str]:
    keyring = tmp_path / "keyring.json"
    entries = json.loads(keyring.read_text()) if keyring.exists() else []
    return [json.loads(value)["token"] for _s, user, value in entries if user != "_users"]


def test_login_status_logout_end_to_end(emu: Emulator, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    user = emu.credentials["users"][1]
    login = Running(["login", emu.url, "--no-browser"], env=env, cwd=tmp_path)
    url = login.line_where(is_sign_in_url(emu))
    assert url.strip() == url  # on a line of its own
    page = follow(emu, url, user=1)
    assert page.status_code == 200 and "terminal" in page.text
    code, out, err = login.finish()
    assert code == 0, out + err
    assert f"Signed in to {emu.url} as {user['name']} <{user['email']}>" in out.splitlines()
    assert "keyring" in out
    (token,) = remembered_tokens(tmp_path)
    assert whoami(emu, token).user.email == user["email"]
    assert_no_secrets(emu, tmp_path, out, err)

    status = run_cli(["status", emu.url], env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"Signed in to {emu.url} as {user['name']} <{user['email']}>, from this machine's keyring" in status.stdout
    assert "Log in with Speckle" in status.stdout
    assert_no_secrets(emu, tmp_path, status.stdout, status.stderr)

    logout = run_cli(["logout", emu.url], env=env, cwd=tmp_path)
    assert logout.returncode == 0 and "revoked and forgotten" in logout.stdout
    with pytest.raises(InvalidToken):
        whoami(emu, token)
    assert remembered_tokens(tmp_path) == []
    after = run_cli(["status", emu.url], env=env, cwd=tmp_path)
    assert after.returncode == 1 and "Not signed in" in after.stderr and "login" in after.stderr


def test_denying_on_speckles_page_fails_with_one_line(emu: Emulator, tmp_path: Path) -> None:
    login = Running(["login", emu.url, "--no-browser"], env=cli_env(tmp_path), cwd=tmp_path)
    login.line_where(is_sign_in_url(emu))
    redirect = emu.credentials["connector_redirect_url"]
    assert httpx.get(f"{redirect}/?denied=true", trust_env=False).status_code == 200
    code, out, err = login.finish()
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "not to allow" in err
    assert remembered_tokens(tmp_path) == []


def test_a_busy_port_offers_paste_back(emu: Emulator, tmp_path: Path) -> None:
    port = int(emu.credentials["connector_redirect_url"].rsplit(":", 1)[1])
    with socket.socket() as desktop_service:
        desktop_service.bind(("127.0.0.1", port))
        desktop_service.listen()
        login = Running(["login", emu.url, "--no-browser"], env=cli_env(tmp_path), cwd=tmp_path)
        url = login.line_where(is_sign_in_url(emu))
        login.line_where(lambda line: "paste" in line.lower())
        login.type("this is not it\n")
        login.line_where(lambda line: "access_code=" in line)  # says what to paste instead
        login.type(consent(emu, authorize_url=url) + "\n")
        code, out, err = login.finish()
    assert code == 0, out + err
    assert "already in use" in out
    assert f"Signed in to {emu.url} as" in out
    assert_no_secrets(emu, tmp_path, out, err)


FAKE_BROWSER = """#!{python}
import os, signal, sys
if os.fork():
    sys.exit(0)  # a browser's launcher returns at once; the browser goes on, with its command line
null = os.open(os.devnull, os.O_RDWR)
for stream in (0, 1, 2):
    os.dup2(null, stream)
with open({pid_file!r}, "w") as handle:
    handle.write(str(os.getpid()))
signal.pause()
"""


def test_the_browser_gets_a_file_only_the_user_can_read_never_the_address(emu: Emulator, tmp_path: Path) -> None:
    """The attack: another user reads the browser's command line (/proc/PID/cmdline) for the sign-in address."""
    from support.another_user import run_as_nobody

    pid_file = tmp_path / "browser.pid"
    browser = tmp_path / "browser"
    browser.write_text(FAKE_BROWSER.format(python=sys.executable, pid_file=str(pid_file)))
    browser.chmod(0o755)
    login = Running(["login", emu.url], env=cli_env(tmp_path, BROWSER=str(browser)), cwd=tmp_path)
    try:
        login.line_where(lambda line: "opening in your browser" in line)
        pid = int(poll(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="the browser"))
        seen = run_as_nobody(["cat", f"/proc/{pid}/cmdline"])
        assert seen.returncode == 0 and "file://" in seen.stdout, seen  # the attacker can read the command line
        assert "authn" not in seen.stdout and emu.url not in seen.stdout  # but it holds no sign-in address
        page = Path(unquote(urlsplit(seen.stdout.split("\0")[-2]).path))
        assert stat.S_IMODE(page.stat().st_mode) == 0o600 and stat.S_IMODE(page.parent.stat().st_mode) == 0o700
        assert run_as_nobody(["cat", str(page)]).returncode != 0  # and cannot read the page it opens
        address = re.search(r'content="0;url=([^"]+)"', page.read_text()).group(1)  # type: ignore[union-attr]
        assert follow(emu, html.unescape(address)).status_code == 200  # the page leads to the sign-in
        code, out, err = login.finish()
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert code == 0 and "Signed in" in out, out + err
    assert not page.parent.exists()  # gone with the sign-in, and the challenge with it
    assert "authn" not in out  # the address is printed only when no browser opens


@pytest.mark.parametrize("paste", [False, True])
def test_another_users_listener_on_the_port_stops_login_before_anything_opens(
    emu: Emulator, tmp_path: Path, paste: bool
) -> None:
    from support.another_user import listening_as_nobody

    port = int(emu.credentials["connector_redirect_url"].rsplit(":", 1)[1])
    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\ntouch {opened}\n")
    browser.chmod(0o755)
    with listening_as_nobody(port):
        done = run_cli(["login", emu.url, *(["--paste"] if paste else [])], env=cli_env(tmp_path, BROWSER=str(browser)),
                       cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]  # one line
    assert f"Port {port} of this machine" in done.stderr and "another user of this machine (nobody" in done.stderr
    assert "personal access token" in done.stderr
    assert not opened.exists() and "authn" not in done.stdout + done.stderr


def test_paste_mode_for_a_browser_on_another_machine(emu: Emulator, tmp_path: Path) -> None:
    login = Running(["login", emu.url, "--no-browser", "--paste"], env=cli_env(tmp_path), cwd=tmp_path)
    login.line_where(lambda line: line == "Open this address in a browser, on this machine or another, and sign in:")
    url = login.line_where(is_sign_in_url(emu))
    login.type(consent(emu, authorize_url=url).replace("?", "/?") + "\n")
    code, out, err = login.finish()
    assert code == 0 and "Signed in" in out, out + err


def test_without_a_keyring_it_offers_the_env_file_before_any_browser_opens(emu: Emulator, tmp_path: Path) -> None:
    env = cli_env(tmp_path, keyring="keyring.backends.fail.Keyring")
    done = run_cli(["login", emu.url, "--no-browser"], env=env, cwd=tmp_path)
    assert done.returncode == 1 and "authn" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "No keyring works on this machine" in done.stderr and "nothing was opened" in done.stderr
    assert "login --env-file" in done.stderr and "SPECKLE_TOKEN" in done.stderr and f"{emu.url}/settings" in done.stderr
    assert emu.requests_seen("/auth/token") == 0  # no sign-in was made only to be revoked again


@pytest.mark.parametrize("to", ["process", "another-thread"])
def test_ctrl_c_cancels_and_closes_the_port(emu: Emulator, tmp_path: Path, to: str) -> None:
    login = Running(["login", emu.url, "--no-browser"], env=cli_env(tmp_path), cwd=tmp_path)
    login.line_where(lambda line: line.startswith("Waiting"))
    if to == "process":
        login.process.send_signal(signal.SIGINT)
    else:
        signal_another_thread(login.process.pid, signal.SIGINT)
    code, _out, err = login.finish(timeout=15)
    assert code == 130 and "Cancelled" in err
    port = int(emu.credentials["connector_redirect_url"].rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = run_cli(["login", f"http://127.0.0.1:{free_loopback_port()}", "--no-browser"], env=cli_env(tmp_path),
                     cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Could not reach" in result.stderr


# --- revoke ----------------------------------------------------------------------------------------------------


def test_revoke_reads_the_token_from_stdin_and_says_what_next(emu: Emulator, tmp_path: Path) -> None:
    token = emu.credentials["users"][1]["pat"]
    result = run_cli(["revoke", "--server", emu.url], env=cli_env(tmp_path), cwd=tmp_path, stdin=token + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Revoked" in result.stdout
    for step in ("replacement", f"{emu.url}/settings", "Update", "Review access"):
        assert step in result.stdout
    assert token not in result.stdout + result.stderr
    with pytest.raises(InvalidToken):
        whoami(emu, token)
    again = run_cli(["revoke", "--server", emu.url], env=cli_env(tmp_path), cwd=tmp_path, stdin=token)
    assert again.returncode == 1 and "does not know this token" in again.stderr


def test_revoke_refuses_a_token_on_the_command_line(emu: Emulator, tmp_path: Path) -> None:
    token = emu.credentials["users"][1]["pat"]
    result = run_cli(["revoke", "--server", emu.url, token], env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1 and "command line" in result.stderr
    assert token not in result.stdout + result.stderr
    assert whoami(emu, token).user.id  # nothing was revoked
    typo = run_cli([token], env=cli_env(tmp_path), cwd=tmp_path)
    assert typo.returncode == 2 and token not in typo.stdout + typo.stderr


def test_revoke_from_python(emu: Emulator) -> None:
    token = emu.credentials["users"][0]["pat"]
    done = speckle_nb_auth.revoke(token, emu.url)
    assert done.server == emu.url and "Revoked" in str(done) and token not in repr(done)
    with pytest.raises(InvalidToken):
        whoami(emu, token)
    with pytest.raises(LogoutFailed) as caught:
        speckle_nb_auth.revoke(token, emu.url)
    assert "another Speckle server" in caught.value.message


def test_login_can_remember_in_a_git_ignored_env_file_instead(emu: Emulator, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    env = cli_env(tmp_path, keyring="keyring.backends.fail.Keyring")
    login = Running(["login", emu.url, "--no-browser", "--env-file"], env=env, cwd=project)
    follow(emu, login.line_where(is_sign_in_url(emu)))
    code, out, err = login.finish()
    assert code == 0, out + err
    saved = project / ".env"
    assert f"Saved to {saved} (readable only by you, ignored by git)" in out
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=project).returncode == 0
    assert_no_secrets(emu, tmp_path, out, err)
    status = run_cli(["status"], env=env, cwd=project)
    assert f"Signed in to {emu.url} as" in status.stdout and f"from the .env file {saved}" in status.stdout
    assert "a \u201cLog in with Speckle\u201d sign-in" in status.stdout  # no hedging about its own token
    token = next(line.split("=", 1)[1] for line in saved.read_text().splitlines() if line.startswith("SPECKLE_TOKEN="))

    logout = run_cli(["logout", emu.url], env=env, cwd=project)  # it once ignored the .env's sign-in
    assert f"the sign-in saved in {saved} was revoked and removed from it" in logout.stdout, logout.stdout
    assert not saved.exists()  # nothing else was in it
    with pytest.raises(InvalidToken):
        whoami(emu, token)


def test_logout_leaves_a_token_the_person_put_in_the_env_file_alone(emu: Emulator, tmp_path: Path) -> None:
    pat = emu.credentials["users"][1]["pat"]
    (tmp_path / ".env").write_text(f"SPECKLE_SERVER={emu.url}\nSPECKLE_TOKEN={pat}\n")
    logout = run_cli(["logout", emu.url], env=cli_env(tmp_path), cwd=tmp_path)
    assert logout.returncode == 0 and "was left alone" in logout.stdout and "revoke <" in logout.stdout
    assert whoami(emu, pat).user.name  # still valid: it may be what their CI uses
    assert pat in (tmp_path / ".env").read_text() and pat not in logout.stdout


@pytest.mark.parametrize("command", [["status"], ["logout"], ["login", "--no-browser"], ["revoke", "--server"]])
def test_a_token_typed_where_the_server_goes_is_never_echoed_or_looked_up(
    emu: Emulator, tmp_path: Path, command: list[str]
) -> None:
    token = emu.credentials["users"][1]["pat"]
    done = run_cli([*command, token], env=cli_env(tmp_path), cwd=tmp_path, stdin="")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == ("That is not a Speckle server address (it has no dot and no port): give one "
                                   "such as app.speckle.systems or http://localhost:3000.")
    assert token[10:] not in done.stdout + done.stderr
