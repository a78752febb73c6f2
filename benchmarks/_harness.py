"""What every benchmark needs: timing statistics, free ports, and the emulator and a Jupyter server as processes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> float:
    """Seconds until `url` answers (any HTTP status), polling; raises if the process dies or time runs out."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL we built
                return time.perf_counter() - start
        except urllib.error.HTTPError:
            return time.perf_counter() - start
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class EmulatorProcess:
    url: str
    credentials: dict[str, Any]


@contextmanager
def emulator_process(redirect_url: str, workdir: Path) -> Iterator[EmulatorProcess]:
    """The emulator in its own process, so its work never shares this process's GIL with what is measured."""
    port = free_port()
    creds_file = workdir / f"emulator-{port}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "speckle_nb_auth.emulator", "--port", str(port), "--redirect-url", redirect_url,
         "--credentials-file", str(creds_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/graphql", proc)
        deadline = time.monotonic() + 10
        while not creds_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        yield EmulatorProcess(f"http://127.0.0.1:{port}", json.loads(creds_file.read_text()))
    finally:
        stop(proc)


@dataclass
class JupyterProcess:
    url: str
    token: str
    seconds_to_ready: float


@contextmanager
def jupyter_server(port: int, env: dict[str, str], extension: bool = True) -> Iterator[JupyterProcess]:
    token = secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="bench-jupyter-"))
    args = [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={workdir}",
            "--allow-root"]
    if not extension:
        args.append("--ServerApp.jpserver_extensions={'speckle_nb_auth': False}")
    full_env = {**os.environ, "JUPYTER_CONFIG_DIR": str(workdir / "config"),
                "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), **env}
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/status?token={token}", proc)
        yield JupyterProcess(f"http://127.0.0.1:{port}", token, time.perf_counter() - start)
    finally:
        stop(proc)
