"""The README's first command: the demo starts the emulator and JupyterLab on the quickstart, says where to click,
and Ctrl-C stops both."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def test_demo_starts_both_servers_and_stops_cleanly_on_ctrl_c() -> None:
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py")], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("Authorize" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "the demo stopped early:\n" + "".join(lines)
            lines.append(line)
        text = "".join(lines)
        lab = re.search(r"(http://127\.0\.0\.1:\d+/lab/tree/notebooks/quickstart\.ipynb\?token=\w+)", text)
        emulator = re.search(r"Speckle emulator \((http://127\.0\.0\.1:\d+)\)", text)
        assert lab and emulator, text
        assert "ada@example.com" in text and "Log in with Speckle" in text
        assert httpx.get(lab.group(1)).status_code == 200
        token = lab.group(1).rsplit("token=", 1)[1]
        base = lab.group(1).split("/lab/")[0]
        status = httpx.get(f"{base}/speckle-auth/status", headers={"Authorization": f"token {token}"}).json()
        assert status["default_server"] == emulator.group(1) and status["servers"][0]["oauth"] is True
        # When: Ctrl-C
        proc.send_signal(signal.SIGINT)
        # Then: both servers are gone and the demo exits
        assert proc.wait(30) == 0
        for url in (lab.group(1), emulator.group(1) + "/graphql"):
            try:
                httpx.get(url, timeout=2)
            except httpx.TransportError:
                continue
            raise AssertionError(f"{url} still answers after Ctrl-C")
    finally:
        if proc.poll() is None:
            proc.kill()
