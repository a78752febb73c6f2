"""Fixtures of the login panel's kernel half: a fake IPython shell, the panels a test makes in it (closed after),
and the sign-in registry emptied around a test. A plugin (tests/conftest.py lists it), not a conftest: the kernel
tests use them, and so does a server-extension battery test that renews a panel's token through the
extension's refresh route (tests/serverext/test_battery_faults_routes.py).

`_fresh_registry` is not autouse: a module that wants it says `pytestmark = pytest.mark.usefixtures(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from speckle_nb_auth import _login as registry
from speckle_nb_auth.panel import LoginPanel
from support.panel import FakeShell


@pytest.fixture
def _fresh_registry() -> Iterator[None]:
    registry._by_server.clear()
    registry._latest.clear()
    yield
    registry._by_server.clear()
    registry._latest.clear()


@pytest.fixture
def shell() -> FakeShell:
    return FakeShell()


@pytest.fixture
def panels(shell: FakeShell) -> Iterator[Callable[..., LoginPanel]]:
    made: list[LoginPanel] = []

    def make(**kwargs: Any) -> LoginPanel:
        kwargs.setdefault("shell", shell)
        panel = LoginPanel(**kwargs)
        made.append(panel)
        return panel

    yield make
    for panel in made:
        if panel.client is not None:
            panel.client.close()
        panel.close()
