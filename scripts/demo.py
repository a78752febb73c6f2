"""The README's first command: a local Speckle emulator and JupyterLab set up for it, on the quickstart notebook.

Nothing leaves this machine: both servers bind 127.0.0.1. Ctrl-C stops both.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[2]} stopped before it was ready; its log: {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a loopback URL we built
                return
        except urllib.error.HTTPError:
            return  # it answered: it is up
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{proc.args[2]} was not ready after {timeout:.0f} s; its log: {log}")


def _stop(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    # Ctrl-C and SIGTERM both stop the demo, also when it was started with SIGINT ignored (in the background).
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    workdir = Path(tempfile.mkdtemp(prefix="speckle-nb-auth-demo-"))
    lab_port = free_port()
    creds_file = workdir / "emulator.json"
    emulator_port = free_port()
    emulator_log = workdir / "emulator.log"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "speckle_nb_auth.emulator", "--port", str(emulator_port),
         "--redirect-url", f"http://127.0.0.1:{lab_port}/speckle-auth/callback",
         "--credentials-file", str(creds_file)],
        stdout=emulator_log.open("wb"), stderr=subprocess.STDOUT,
    )
    processes = [emulator]
    try:
        wait_until_up(f"http://127.0.0.1:{emulator_port}/graphql", emulator, emulator_log)
        creds = json.loads(creds_file.read_text())
        jupyter_token = secrets.token_hex(16)
        env = {
            **os.environ,
            "SPECKLE_SERVER": creds["url"],
            "SPECKLE_APP_ID": creds["app_id"],
            "SPECKLE_APP_SECRET": creds["app_secret"],
            "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        }
        lab_log = workdir / "jupyterlab.log"
        lab = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={lab_port}",
             "--port-retries=0", f"--IdentityProvider.token={jupyter_token}", f"--ServerApp.root_dir={ROOT}",
             "--LabApp.news_url=", "--allow-root"],
            env=env, stdout=lab_log.open("wb"), stderr=subprocess.STDOUT,
        )
        processes.append(lab)
        wait_until_up(f"http://127.0.0.1:{lab_port}/api/status?token={jupyter_token}", lab, lab_log)
        users = creds["users"]
        url = f"http://127.0.0.1:{lab_port}/lab/tree/notebooks/quickstart.ipynb?token={jupyter_token}"
        print(
            "\nspeckle-nb-auth demo is running (Ctrl-C stops it). Logs are in " + str(workdir) + "\n\n"
            f"  1. Open JupyterLab:   {url}\n"
            "  2. Run the cells; in the panel click 'Log in with Speckle'.\n"
            f"  3. In the new tab sign in to the local Speckle emulator ({creds['url']}) as\n"
            f"       {users[0]['email']}  password {users[0]['password']}\n"
            f"     (or {users[1]['email']}  password {users[1]['password']}), then click 'Authorize'.\n"
            "  4. Back in the notebook, `speckle` is your signed-in client.\n\n"
            f"  A personal access token for the panel's PAT path is in {creds_file}.\n",
            flush=True,
        )

        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        print("A server stopped on its own; stopping the demo.", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nStopping the emulator and JupyterLab...", flush=True)
    finally:
        for proc in reversed(processes):
            if proc.poll() is None:
                proc.terminate()  # both servers stop cleanly on SIGTERM
        for proc in processes:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
