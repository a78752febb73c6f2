"""Servers the tests start as subprocesses (Jupyter, JupyterHub, the demo, a user's Jupyter server), the ports they
listen on, and waiting for them: `start_server` is the one way to start one and wait until it answers.

Nothing here sleeps for a fixed time: every wait is a poll with a deadline.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port free on 127.0.0.1 just now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_loopback_port() -> int:
    """A port free on both loopback addresses just now (for a `http://localhost:<port>` redirect URL, such as the
    emulator's connector app's: a browser may try either address)."""
    from speckle_nb_auth._receiver import LoopbackReceiver

    with LoopbackReceiver("http://localhost:0") as probe:
        return probe.port


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def poll(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition",
    on_timeout: Callable[[], str] | None = None,
) -> Any:
    """Call `check` until it returns something truthy (which is returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{detail}")
        time.sleep(interval)


def http_client(**kwargs: Any) -> httpx.Client:
    """An HTTP client that ignores proxy settings: every test request stays on loopback."""
    return httpx.Client(trust_env=False, timeout=10.0, **kwargs)


def answers(url: str, status: int = 200, *, token: str | None = None) -> bool:
    """Whether `url` answers now with `status` (with a Jupyter or JupyterHub `token`, if given)."""
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with http_client(headers=headers) as http:
            return http.get(url).status_code == status
    except httpx.HTTPError:
        return False


def as_from_a_terminal() -> None:
    """`preexec_fn` for a command a test stops with Ctrl-C: SIGINT at its default and not blocked, as a shell starts
    it in the foreground. A suite started in the background (`.ci/run &`, as CI may) ignores SIGINT, every child
    inherits that, and the CLI's Ctrl-C test hung."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def signal_another_thread(pid: int, sig: int) -> None:
    """Send `sig` to a thread of process `pid` that is not its main one, as the OS may for a signal sent to the
    process: Python runs its handler only in the main thread, once that thread wakes."""
    libc = ctypes.CDLL(None, use_errno=True)
    others = [int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid]
    assert others, f"process {pid} has no thread besides its main one"
    assert libc.tgkill(pid, others[0], sig) == 0, os.strerror(ctypes.get_errno())


def start_server(
    args: Sequence[str], *, log: Path, ready: Callable[[], bool], what: str, env: Mapping[str, str] | None = None,
    cwd: Path | None = None, timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start `args` in a session of its own (`stop_process` ends it and its children), its stdout and stderr in
    `log`, and return once `ready()` is true. If the process exits first, or `timeout` seconds pass, it is
    stopped and the test fails with the log's tail."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603
            list(args), cwd=cwd, env=None if env is None else dict(env), stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=as_from_a_terminal,
        )

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode} while starting")
        return ready()

    try:
        poll(up, timeout=timeout, interval=0.2, what=what)
    except AssertionError as err:
        stop_process(proc)
        pytest.fail(f"{err}\n--- {log.name} ---\n{log_tail(log)}", pytrace=False)
    except BaseException:
        stop_process(proc)
        raise
    return proc


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """SIGTERM to the process group and wait (Jupyter shuts its kernels down; the hub its servers and proxy),
    then SIGKILL whatever is left in the group."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    # children (kernels) that outlived their parent
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
