"""Run the terminal login as a user would: a real subprocess with an in-memory keyring (persisted to a file, so
one command sees what the previous one remembered), read as it prints."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from support import TESTS
from support.memory_keyring import BACKEND
from support.processes import as_from_a_terminal


def cli_env(tmp_path: Path, *, keyring: str = BACKEND, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p)
    env["PYTHON_KEYRING_BACKEND"] = keyring
    env["MEMORY_KEYRING_FILE"] = str(tmp_path / "keyring.json")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a command that hangs is stopped with SIGABRT: its threads' stacks are shown
    env.update(extra)
    return env


class Running:
    """A CLI process whose stdout is read line by line as it comes. `stop_all` ends those a failed test left."""

    started: list[Running] = []

    @classmethod
    def stop_all(cls) -> None:
        for running in cls.started:
            if running.process.poll() is None:
                running.process.kill()
                running.process.wait(10)
        cls.started.clear()

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path) -> None:
        Running.started.append(self)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "speckle_nb_auth", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, preexec_fn=as_from_a_terminal,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def line_where(self, wanted: Callable[[str], bool], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no such line within {timeout}s; printed so far: {self.lines}") from None
            if line is None:
                raise AssertionError(f"the command ended first; it printed: {self.lines}")
            self.lines.append(line)
            if wanted(line):
                return line

    def type(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        """Exit status, all of stdout, all of stderr."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(10)
            assert self.process.stderr is not None
            raise AssertionError(f"still running after {timeout}s; printed: {self.lines}; where each thread was:\n"
                                 f"{self.process.stderr.read()[-6000:]}") from None
        self._reader.join(timeout)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)
        assert self.process.stderr is not None
        return code, "\n".join(self.lines), self.process.stderr.read()


def run_cli(args: list[str], *, env: dict[str, str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "speckle_nb_auth", *args], input=stdin, capture_output=True, text=True, env=env,
        cwd=cwd, timeout=60,
    )
