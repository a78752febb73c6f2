"""Waits that Ctrl-C ends. The OS may hand SIGINT to any thread of the process (a loopback listener's, ZMQ's), and
Python runs its handler only in the main thread, once that thread wakes: a main thread asleep in one long wait
would notice the Ctrl-C only when the wait ends. So every wait a person may interrupt wakes every `SLICE` seconds.
"""

from __future__ import annotations

import threading
import time

__all__ = ["SLICE", "wait"]

SLICE = 0.25


def wait(event: threading.Event, timeout: float | None = None) -> bool:
    """`event.wait(timeout)`, in slices: whether `event` was set within `timeout` seconds (None: no limit)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE if deadline is None else deadline - time.monotonic()
        if event.wait(max(0.0, min(SLICE, left))):
            return True
        if deadline is not None and left <= 0:
            return False
