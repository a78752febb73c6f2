"""`python -m benchmarks hub`: a class signing in at once through the hub's Speckle login service.

The service is the real one (`python -m speckle_nb_auth.hub`, its own process, JupyterHub's real HubOAuth), with the
emulator as Speckle (its own process). No JupyterHub runs: HubAuth's token checks go to a tiny stand-in for the
hub's REST API (tests/support/fake_hub.py, in this process), which answers `GET /hub/api/user` for each user's
token. 200 users sign in, 50 at a time: with more at once the emulator, one Python process answering every Speckle
call, is what makes logins wait (the service's exchange waits 15 s for Speckle, then fails the login). Each login is
what a user's browser and server do at HTTP level: start (the browser), Speckle's consent (the emulator's backend
route), the callback (the browser, with its flow cookie), the status poll and the claim (the user's server, with its
token). The users' servers' relay hop is not in it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._harness import ROOT, emulator_process, free_port, median, percentile, stop, wait_until_up

PREFIX = "/services/speckle-auth/"
USERS = 200
AT_ONCE = 50  # logins in progress together: the emulator (one Python process) answers 200 at once too slowly
SCOPE = "access:services!service=speckle-auth"


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_login(service: str, token: str, emu: Any) -> float:
    creds = emu.credentials
    flow = secrets.token_urlsafe(18)
    start = time.perf_counter()
    auth = {"Authorization": f"token {token}"}
    with httpx.Client(headers=auth, trust_env=False, timeout=60) as browser:
        started = browser.get(f"{service}login", params={"server": emu.url, "flow": flow},
                              headers={"Sec-Fetch-Site": "same-origin"})
        assert started.status_code == 302, started.text
        challenge = started.headers["location"].rstrip("/").rsplit("/", 1)[1]
        consent = httpx.get(f"{emu.url}/auth/accesscode", params={
            "appId": creds["app_id"], "challenge": challenge, "token": creds["session_token"],
            "preventRedirect": "true"}, timeout=60)
        callback = urlsplit(consent.json()["redirectUrl"])
        assert browser.get(f"{service}callback?{callback.query}").status_code == 302
        state = browser.get(f"{service}flows/{flow}").json()
        assert state["status"] == "done", state
    with httpx.Client(headers=auth, trust_env=False, timeout=60) as server:
        claimed = server.post(f"{service}flows/{flow}/claim", json={}).json()
    assert claimed["token"]
    return time.perf_counter() - start


def bench_hub() -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.fake_hub import FakeHub

    port = free_port()
    service = f"http://127.0.0.1:{port}{PREFIX}"
    with tempfile.TemporaryDirectory() as tmp, FakeHub() as hub, \
            emulator_process(f"http://127.0.0.1:{port}{PREFIX}callback", Path(tmp)) as emu:
        tokens = [hub.token_for(f"student-{n:03}", ("self", SCOPE)) for n in range(USERS)]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SPECKLE_", "JUPYTERHUB_"))},
            "JUPYTERHUB_API_URL": hub.api_url, "JUPYTERHUB_API_TOKEN": hub.token_for("speckle-auth", (), "service"),
            "JUPYTERHUB_SERVICE_NAME": "speckle-auth", "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}",
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX, "JUPYTERHUB_CLIENT_ID": "service-speckle-auth",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": PREFIX + "oauth_callback", "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([SCOPE]), "SPECKLE_SERVER": emu.url,
            "SPECKLE_APP_ID": emu.credentials["app_id"], "SPECKLE_APP_SECRET": emu.credentials["app_secret"],
            "SPECKLE_REDIRECT_URI": f"http://127.0.0.1:{port}{PREFIX}callback",
            "SPECKLE_AUTH_STATE_FILE": str(Path(tmp) / "owners.sqlite"),  # as configure() sets it up
        }
        log = (Path(tmp) / "service.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "speckle_nb_auth.hub"], env=env,  # noqa: S603
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_until_up(f"{service}status", proc)
            idle = memory_kib(proc.pid)
            cpu_before = cpu_seconds(proc.pid)
            sequential = [one_login(service, tokens[n], emu) for n in range(20)]
            with ThreadPoolExecutor(AT_ONCE) as pool:
                started = time.perf_counter()
                concurrent = list(pool.map(lambda token: one_login(service, token, emu), tokens))
                wall = time.perf_counter() - started
            after = memory_kib(proc.pid)
            cpu = (cpu_seconds(proc.pid) - cpu_before) / (USERS + len(sequential))
        except AssertionError:
            sys.stderr.write((Path(tmp) / "service.log").read_text()[-3000:])
            raise
        finally:
            stop(proc)
            log.close()
    return [
        {"figure": f"hub service: {USERS} users' logins, {AT_ONCE} at a time (p50 / p99) vs one at a time (p50)",
         "ours_ms": median(concurrent) * 1e3, "p99_ms": percentile(concurrent, 99) * 1e3,
         "baseline_ms": median(sequential) * 1e3, "ratio": median(concurrent) / median(sequential),
         "wall_s": wall, "target": f"all {USERS} complete", "ok": len(concurrent) == USERS},
        {"figure": f"hub service CPU time per login vs the wall time per login of {USERS}, {AT_ONCE} at a time "
                   "(the rest is Speckle: here the emulator)",
         "ours_ms": cpu * 1e3, "baseline_ms": wall / USERS * 1e3, "ratio": cpu / (wall / USERS), "target": "-",
         "ok": True},
        {"figure": f"hub service memory: peak resident after {USERS} logins vs idle",
         "ours_MiB": after["VmHWM"] / 1024, "baseline_MiB": idle["VmRSS"] / 1024,
         "ratio": after["VmHWM"] / idle["VmRSS"], "target": "-", "ok": True},
    ]
