"""Fixtures every test layer shares: a Jupyter server (pytest-jupyter), a fresh Speckle emulator, a keyring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

# The helpers in support/ assert too: pytest's assertion messages for them, as for the tests.
pytest.register_assert_rewrite("support")

from support.memory_keyring import MemoryKeyring  # noqa: E402

# pytest-jupyter's Jupyter server; and fixtures two sibling parts need (pytest reads pytest_plugins in this conftest
# only): the panel's, for the kernel tests and a server-extension battery, and Chromium, for the browser and hub tests
pytest_plugins = ["pytest_jupyter.jupyter_server", "support.fixtures_panel", "support.fixtures_browser"]


@pytest.fixture
def emulator() -> Iterator[object]:
    """A fresh emulator per test: tests log tokens out and revoke apps, so none may share one."""
    from speckle_nb_auth.emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's Speckle credentials, desktop accounts or `.env` file (tests run in their own
    folder: a `.env` is looked for from the working directory up)."""
    for name in ("SPECKLE_TOKEN", "SPECKLE_SERVER", "SPECKLE_APP_ID", "SPECKLE_APP_SECRET", "SPECKLE_REDIRECT_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPECKLE_USERDATA_PATH", str(tmp_path / "no-desktop-accounts"))
    monkeypatch.chdir(tmp_path)
