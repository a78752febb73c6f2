"""Fixtures of the tests on a real JupyterHub: the emulator, and a JupyterHub on loopback (support/jupyterhub.py's
`Hub`: DummyAuthenticator, SimpleLocalProcessSpawner, configurable-http-proxy from <repo>/node_modules/.bin). The
`browser` fixture, headless Debian Chromium, is support/fixtures_browser.py's.

The emulator's app has ONE redirect URL, the hub's `.../hub/user-redirect/speckle-auth/callback`, as a real
deployment registers it; each single-user server is JupyterLab from this venv with the server extension.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.jupyterhub import NODE_BIN, VENV_BIN, Hub
from support.processes import LOOPBACK, free_port


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    from speckle_nb_auth.emulator import Emulator

    missing = [p for p in (NODE_BIN / "configurable-http-proxy", VENV_BIN / "jupyterhub-singleuser") if not p.exists()]
    if missing:
        pytest.fail(f"missing for the hub tests: {', '.join(map(str, missing))} (run the test command, which "
                    "installs configurable-http-proxy with npm)", pytrace=False)
    tmp = tmp_path_factory.mktemp("hub")
    port = free_port()
    redirect = f"http://{LOOPBACK}:{port}/hub/user-redirect/speckle-auth/callback"
    with Emulator(host=LOOPBACK, port=0, redirect_url=redirect) as emu:
        hub = Hub(tmp, emu, port=port)
        assert emu.credentials["redirect_url"] == hub.redirect_url
        hub.start()
        try:
            yield hub
        finally:
            hub.stop()

