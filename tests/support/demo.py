"""The demo (`scripts/demo.py`, the README's first command) as a subprocess: what it prints, its two servers (the
emulator and JupyterLab), and stopping it. Its tests: tests/project/test_demo.py; in Chromium,
tests/browser/test_demo_in_browser.py."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support import REPO
from support.processes import start_server, stop_process

MARKER = "--registered-app"  # the last line of the instructions says how to try the other kind of app


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    log: Path  # all it prints, stdout and stderr
    text: str  # what it printed up to the end of its instructions
    lab: str  # the quickstart's URL, with the Jupyter token
    emulator: str

    @property
    def base(self) -> str:
        return self.lab.split("/lab/")[0]

    @property
    def jupyter_token(self) -> str:
        return self.lab.rsplit("token=", 1)[1]

    def child(self, marker: str) -> int:
        """The pid of the demo's server process whose command line holds `marker`."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        for pid in children:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " "):
                return int(pid)
        raise AssertionError(f"no child process of the demo runs {marker}")

    def environment(self, pid: int) -> dict[str, str]:
        pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        return dict(pair.split("=", 1) for pair in pairs if "=" in pair)

    def status(self) -> dict[str, object]:
        answer = httpx.get(f"{self.base}/speckle-auth/status",
                           headers={"Authorization": f"token {self.jupyter_token}"}, trust_env=False, timeout=30)
        return dict(answer.json())

    def rest(self, timeout: float = 30) -> str:
        """Everything the demo prints after its instructions, until it exits."""
        self.proc.wait(timeout)
        return self.log.read_text()[len(self.text):]


def instructions(log: Path) -> str | None:
    """What the demo printed up to the end of the instructions' last line, once it has."""
    text = log.read_text()
    at = text.find(MARKER)
    end = text.find("\n", at)
    return text[:end + 1] if at >= 0 and end >= 0 else None


@contextmanager
def running_demo(*args: str, log: Path | None = None) -> Iterator[Demo]:
    """The demo started with `args`, once it has printed its instructions; stopped, with its servers, after."""
    log = log or Path.cwd() / "demo.log"  # each test runs in its own temporary folder (tests/conftest.py)
    proc = start_server([sys.executable, str(REPO / "scripts" / "demo.py"), *args], log=log,
                        ready=lambda: instructions(log) is not None, what="the demo's instructions", timeout=120)
    try:
        text = instructions(log)
        assert text is not None
        lab = re.search(r"(http://127\.0\.0\.1:\d+/lab/tree/notebooks/quickstart\.ipynb\?token=\w+)", text)
        emulator = re.search(r"Speckle emulator \((http://127\.0\.0\.1:\d+)\)", text)
        assert lab and emulator, text
        yield Demo(proc, log, text, lab.group(1), emulator.group(1))
    finally:
        stop_process(proc, timeout=10)
