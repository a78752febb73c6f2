"""The README's first command: a local Speckle emulator and JupyterLab on the quickstart notebook.

By default nothing is set up but the server's address (`SPECKLE_SERVER`): "Log in with Speckle" goes through
Speckle's public connector app, as it would on app.speckle.systems. `--registered-app` configures the emulator's
seeded app instead (`SPECKLE_APP_ID`, `SPECKLE_APP_SECRET`, `SPECKLE_REDIRECT_URI`), what an admin sets up for
narrow scopes or JupyterHub.

Nothing leaves this machine: both servers bind 127.0.0.1. Ctrl-C stops both; when one stops on its own the demo
says which and stops the other.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
# A developer's own Speckle settings would hide what the demo shows (a token signs in without the panel).
SPECKLE_VARIABLES = ("SPECKLE_TOKEN", "SPECKLE_SERVER", "SPECKLE_APP_ID", "SPECKLE_APP_SECRET",
                     "SPECKLE_REDIRECT_URI")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_loopback_port() -> int:
    """A port free on 127.0.0.1 and on ::1 (the browser may resolve `localhost` to either), and never Speckle's
    desktop service port 29363, so the demo's connector app cannot collide with a real Speckle install."""
    while True:
        port = free_port()
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", port))
        except OSError as err:
            if err.errno == 99:  # EADDRNOTAVAIL: no IPv6 loopback here, so 127.0.0.1 is all that matters
                return port
            continue
        return port


def wait_until_up(url: str, server: Server, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"The {server.name} stopped before it was ready; its log: {server.log}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a loopback URL we built
                return
        except urllib.error.HTTPError:
            return  # it answered: it is up
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"The {server.name} was not ready after {timeout:.0f} s; its log: {server.log}")


def wait_for_credentials(path: Path, server: Server, timeout: float = 90) -> dict[str, Any]:
    """The credentials file the emulator writes once it listens (renamed into place: whole, or not there yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"The {server.name} stopped before it was ready; its log: {server.log}")
        if path.exists():
            return dict(json.loads(path.read_text()))
        time.sleep(0.1)
    raise SystemExit(f"The {server.name} was not ready after {timeout:.0f} s; its log: {server.log}")


def start(name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> Server:
    return Server(name, subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT), log)


def lab_environment(creds: dict[str, object], workdir: Path, registered_app: bool, keyring_file: Path
                    ) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SPECKLE_VARIABLES}
    env.update(
        SPECKLE_SERVER=str(creds["url"]),
        JUPYTER_CONFIG_DIR=str(workdir / "config"),
        # DEMO ONLY: "Remember me" stores into a plain file in the demo's folder (scripts/demo_keyring.py).
        PYTHON_KEYRING_BACKEND="demo_keyring.DemoKeyring",
        SPECKLE_DEMO_KEYRING_FILE=str(keyring_file),
        PYTHONPATH=os.pathsep.join(p for p in (str(SCRIPTS), os.environ.get("PYTHONPATH", "")) if p),
    )
    if registered_app:
        env.update(SPECKLE_APP_ID=str(creds["app_id"]), SPECKLE_APP_SECRET=str(creds["app_secret"]),
                   SPECKLE_REDIRECT_URI=str(creds["redirect_url"]))
    return env


def instructions(url: str, creds: dict[str, object], workdir: Path, registered_app: bool, keyring_file: Path,
                 creds_file: Path) -> str:
    users = creds["users"]
    assert isinstance(users, list)
    first, second = users[0], users[1]
    if registered_app:
        how = ("  Signing in with the emulator's registered app (SPECKLE_APP_ID, SPECKLE_APP_SECRET and\n"
               "  SPECKLE_REDIRECT_URI are set for JupyterLab, as an admin would set them).\n")
        consent = ", then click 'Authorize'"
        other = "  Without --registered-app the demo shows the sign-in with nothing set up.\n"
    else:
        how = ("  Nothing is set up but SPECKLE_SERVER: 'Log in with Speckle' uses Speckle's public connector app,\n"
               f"  which sends your browser back to {creds['connector_redirect_url']} (a free port, so a Speckle\n"
               "  desktop service on this machine is left alone).\n")
        consent = ""
        other = ("  To try a registered app (narrow scopes, JupyterHub), stop this demo and run the one that sets\n"
                 "  SPECKLE_APP_ID, SPECKLE_APP_SECRET and SPECKLE_REDIRECT_URI: .venv/bin/python scripts/demo.py "
                 "--registered-app\n")
    return (
        f"\nspeckle-nb-auth demo is running (Ctrl-C stops it). Logs and a copy of notebooks/ are in {workdir}\n"
        "(what you run and save there leaves the repository's notebooks as they are).\n\n"
        f"  1. Open JupyterLab:   {url}\n"
        "  2. Run > Run All Cells; the first cell waits while you click 'Log in with Speckle' in its panel.\n"
        f"  3. In the new tab sign in to the local Speckle emulator ({creds['url']}) as\n"
        f"       {first['email']}  password {first['password']}\n"
        f"     (or {second['email']}  password {second['password']}){consent}.\n"
        "  4. Back in the notebook the other cells run: `speckle` is your signed-in client.\n\n"
        + how
        + "\n"
        f"  A personal access token for the panel's token field is in {creds_file}.\n"
        f"  'Remember me' works here with a DEMO-ONLY keyring: a plain file, {keyring_file},\n"
        "  deleted when the demo stops (a real machine uses its OS keyring).\n\n"
        + other
    )


def watch(servers: list[Server]) -> int:
    """Wait until a server stops on its own; say which (and where its log is). The exit status for the demo."""
    while True:
        for server in servers:
            code = server.proc.poll()
            if code is not None:
                others = " and ".join(s.name for s in servers if s is not server)
                print(f"\nThe {server.name} stopped on its own (exit status {code}); its log: {server.log}\n"
                      f"Stopping the {others}.", file=sys.stderr, flush=True)
                return 1
        time.sleep(0.3)


def _stop(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registered-app", action="store_true",
                        help="sign in with the emulator's registered app instead of Speckle's public connector app")
    options = parser.parse_args(argv)
    # Ctrl-C and SIGTERM both stop the demo, also when it was started with SIGINT ignored (in the background).
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    workdir = Path(tempfile.mkdtemp(prefix="speckle-nb-auth-demo-"))
    # JupyterLab serves a copy, so running and saving the notebooks leaves the repository's files as they are; in
    # a folder of its own, so the emulator's credentials and the keyring file are not in its file browser
    served = workdir / "lab"
    shutil.copytree(ROOT / "notebooks", served / "notebooks")
    # no "Would you like to get notified about official Jupyter news?" over the notebook
    notification = workdir / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    keyring_file = workdir / "demo-only-keyring.json"
    lab_port = free_port()
    creds_file = workdir / "emulator.json"
    emulator_port = free_port()
    servers: list[Server] = []
    status = 0
    try:
        emulator = start("Speckle emulator", [
            sys.executable, "-m", "speckle_nb_auth.emulator", "--port", str(emulator_port),
            "--redirect-url", f"http://127.0.0.1:{lab_port}/speckle-auth/callback",
            "--connector-redirect-url", f"http://localhost:{free_loopback_port()}",
            "--credentials-file", str(creds_file)], workdir / "emulator.log")
        servers.append(emulator)
        creds = wait_for_credentials(creds_file, emulator)
        jupyter_token = secrets.token_hex(16)
        lab = start("JupyterLab server", [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={lab_port}",
            "--port-retries=0", f"--IdentityProvider.token={jupyter_token}", f"--ServerApp.root_dir={served}",
            "--LabApp.news_url=", "--allow-root"],
            workdir / "jupyterlab.log", lab_environment(creds, workdir, options.registered_app, keyring_file))
        servers.append(lab)
        wait_until_up(f"http://127.0.0.1:{lab_port}/api/status?token={jupyter_token}", lab)
        url = f"http://127.0.0.1:{lab_port}/lab/tree/notebooks/quickstart.ipynb?token={jupyter_token}"
        print(instructions(url, creds, workdir, options.registered_app, keyring_file, creds_file), flush=True)
        status = watch(servers)
    except KeyboardInterrupt:
        print("\nStopping the Speckle emulator and the JupyterLab server...", flush=True)
    finally:
        for server in reversed(servers):
            if server.proc.poll() is None:
                server.proc.terminate()  # both servers stop cleanly on SIGTERM
        for server in servers:
            try:
                server.proc.wait(15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
        keyring_file.unlink(missing_ok=True)  # the demo-only keyring holds tokens in plain text
        creds_file.unlink(missing_ok=True)  # the stopped emulator's tokens and app secret: nothing to keep
        print(f"The demo's logs and its copy of the notebooks stay in {workdir}.", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
