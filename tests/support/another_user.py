"""Another Unix user of this machine, as the outside security review attacked: `nobody`, through `setpriv`.

The tests run as root (as CI does, and as the hub tests need), so they can act as a second user; a run as a
plain user fails these tests with that reason rather than skipping them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from support.processes import is_root

NOBODY = 65534
_AS_NOBODY = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")


def run_as_nobody(argv: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    assert is_root(), "acting as another user needs root (setpriv): run the suite as root, as CI does"
    return subprocess.run([*_AS_NOBODY, *argv], capture_output=True, text=True, timeout=30, check=False,
                          **kwargs)  # type: ignore[call-overload]


def _python_for_anyone() -> str:
    """A Python that another user can start: the system's where there is one (a venv's may live in root's home,
    which nobody else may enter), else this one."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


@contextmanager
def listening_as_nobody(port: int, host: str = "127.0.0.1") -> Iterator[None]:
    """Another user's program listening on `port` of this machine, as the attacker's was."""
    assert is_root(), "acting as another user needs root (setpriv): run the suite as root, as CI does"
    script = (
        "import socket, sys\n"
        f"s = socket.socket(socket.AF_INET6 if ':' in {host!r} else socket.AF_INET)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"  # as servers do: a closed login's TIME_WAIT
        f"s.bind(({host!r}, {port})); s.listen()\n"
        "print('listening', flush=True)\n"
        "sys.stdin.read()\n"
    )
    process = subprocess.Popen([*_AS_NOBODY, _python_for_anyone(), "-c", script], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "listening"
        yield
    finally:
        process.kill()
        process.wait(10)
