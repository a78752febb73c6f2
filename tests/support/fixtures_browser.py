"""The `browser` fixture of the browser and hub tests: headless Debian Chromium under Playwright, one per test
(support/jupyter_ui.py's `chromium` says why). A plugin (tests/conftest.py lists it), since tests/browser and
tests/hub both need it; the server-extension tests' `browser`, an httpx client, is tests/serverext/conftest.py's
and overrides this one there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from support.jupyter_ui import SCREENSHOTS, chromium

_STARTED = time.time()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the screenshots this run kept, so a CI log shows where they are: those written since the run began,
    by this process or by its workers (pytest-xdist runs the tests in other processes)."""
    kept = SCREENSHOTS.glob("*.png") if SCREENSHOTS.is_dir() else []
    taken = sorted(p for p in kept if p.stat().st_mtime >= _STARTED)
    if taken:
        terminalreporter.write_sep("-", "login panel screenshots")
        for path in taken:
            terminalreporter.write_line(str(path))


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, per test."""
    yield from chromium()
