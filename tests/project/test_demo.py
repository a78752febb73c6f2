"""The README's first command: the demo starts the emulator and JupyterLab on the quickstart with nothing set up
but the server's address, says where to click and how to try a registered app, offers a demo-only keyring, stops
both servers on Ctrl-C, and names the server that stopped when one does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from support.demo import running_demo

DESKTOP_SERVICE_PORT = 29363  # Speckle's desktop connectors listen here: the demo must not


def assert_gone(*urls: str) -> None:
    for url in urls:
        try:
            httpx.get(url, timeout=2, trust_env=False)
        except httpx.TransportError:
            continue
        raise AssertionError(f"{url} still answers after the demo stopped")


def test_the_demo_needs_nothing_set_up_and_ctrl_c_stops_both_servers() -> None:
    with running_demo() as demo:
        text = demo.text
        assert "ada@example.com" in text and "Log in with Speckle" in text and "Run All" in text
        assert "Authorize" not in text  # the connector app is trusted: no consent page to click through
        assert httpx.get(demo.lab, trust_env=False, timeout=30).status_code == 200  # the quickstart is served
        # no app configured: only the server's address; "Log in with Speckle" goes through the public app
        status = demo.status()
        assert status["default_server"] == demo.emulator
        servers = status["servers"]
        assert isinstance(servers, list) and len(servers) == 1
        assert (servers[0]["url"], servers[0]["oauth"], servers[0]["app"]) == (demo.emulator, True, "public")
        lab_env = demo.environment(demo.child("jupyterlab"))
        assert lab_env["SPECKLE_SERVER"] == demo.emulator
        assert not {"SPECKLE_APP_ID", "SPECKLE_APP_SECRET", "SPECKLE_REDIRECT_URI", "SPECKLE_TOKEN"} & set(lab_env)
        # the connector app sends the browser to a free loopback port, never the desktop service's
        connector = re.search(r"sends your browser back to (http://localhost:(\d+))", text)
        assert connector, text
        assert int(connector.group(2)) != DESKTOP_SERVICE_PORT
        sca = httpx.post(f"{demo.emulator}/graphql", json={"query": '{ app(id: "sca") { redirectUrl } }'},
                         trust_env=False, timeout=30).json()
        assert sca["data"]["app"]["redirectUrl"].rstrip("/") == connector.group(1)
        # what it prints holds no secret: those are in the 0600 credentials file it names
        creds_file = Path(re.search(r"token field is in (\S+)\.\n", text).group(1))  # type: ignore[union-attr]
        creds = json.loads(creds_file.read_text())
        assert creds_file.stat().st_mode & 0o777 == 0o600
        for secret in [creds["pat"], creds["app_secret"], creds["session_token"],
                       *(user[key] for user in creds["users"] for key in ("pat", "session_token"))]:
            assert secret not in text and secret[-8:] not in text
        # how to try a registered app
        assert "scripts/demo.py --registered-app" in text and "SPECKLE_APP_ID" in text
        # "Remember me": a demo-only keyring in the demo's folder, which a kernel of this JupyterLab can use
        keyring_file = Path(lab_env["SPECKLE_DEMO_KEYRING_FILE"])
        assert "DEMO-ONLY keyring" in text and str(keyring_file) in text
        assert keyring_file.parent.name.startswith("speckle-nb-auth-demo-")
        kernel_like = subprocess.run(
            [sys.executable, "-c",
             "from speckle_nb_auth import _credentials\n"
             "kr = _credentials._keyring()\n"
             "kr.set_password('speckle-nb-auth-demo-test', 'someone', 'remembered')\n"
             "print(type(kr.get_keyring()).__name__, kr.get_password('speckle-nb-auth-demo-test', 'someone'))"],
            env=lab_env, capture_output=True, text=True, check=True)
        assert kernel_like.stdout.split() == ["DemoKeyring", "remembered"]
        assert keyring_file.stat().st_mode & 0o777 == 0o600
        # When: Ctrl-C
        demo.proc.send_signal(signal.SIGINT)
        # Then: both servers are gone, the demo exits cleanly, and the plain-text keyring is deleted
        assert demo.proc.wait(30) == 0
        assert_gone(demo.lab, demo.emulator + "/graphql")
        assert not keyring_file.exists()


def test_the_registered_app_demo_and_a_server_that_stops_is_named() -> None:
    with running_demo("--registered-app") as demo:
        status = demo.status()
        assert status["servers"][0]["app"] == "registered"  # type: ignore[index]
        assert "Authorize" in demo.text and "Without --registered-app" in demo.text
        # When: the emulator dies on its own
        os.kill(demo.child("speckle_nb_auth.emulator"), signal.SIGKILL)
        # Then: the demo names it, stops JupyterLab and exits with a failure
        out = demo.rest()
        assert demo.proc.returncode == 1, out
        assert "The Speckle emulator stopped on its own" in out and "Stopping the JupyterLab server" in out, out
        assert_gone(demo.lab)


def test_jupyter_stopping_on_its_own_is_named_too() -> None:
    with running_demo() as demo:
        os.kill(demo.child("jupyterlab"), signal.SIGKILL)
        out = demo.rest()
        assert demo.proc.returncode == 1, out
        assert "The JupyterLab server stopped on its own" in out and "Stopping the Speckle emulator" in out, out
        assert_gone(demo.emulator + "/graphql")
