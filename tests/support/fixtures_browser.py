"""The `browser` fixture of the browser and hub tests: headless Debian Chromium under Playwright, one per test
(support/jupyter_ui.py's `chromium` says why). A plugin (tests/conftest.py lists it), since tests/browser and
tests/hub both need it; the server-extension tests' `browser`, an httpx client, is tests/serverext/conftest.py's
and overrides this one there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.jupyter_ui import chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, per test."""
    yield from chromium()
