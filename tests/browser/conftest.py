"""Fixtures of the browser tests: the emulator, a real Jupyter server per frontend (JupyterLab 4, Notebook 7),
and a notebook open in headless Debian Chromium (the `browser` fixture is support/fixtures_browser.py's).

One emulator and one Jupyter server serve all the tests of a module for one frontend (starting them is most of
the cost); each test gets its own notebook file, Lab workspace, user settings, kernel and browser, and its own
personal access tokens (minted per test, since logging out revokes them).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.jupyter_server import JupyterServer, write_notebook
from support.jupyter_ui import NotebookUI, SecretLedger, Session, Stack, record_speckle_auth_traffic
from support.processes import free_port

FRONTENDS = ("lab", "notebook")


@pytest.fixture(scope="module", params=FRONTENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from speckle_nb_auth.emulator import Emulator

    frontend = request.param
    tmp = tmp_path_factory.mktemp(f"jupyter-{frontend}")
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/speckle-auth/callback"
    with Emulator(host="127.0.0.1", port=0, redirect_url=redirect) as emu:
        creds = emu.credentials
        env = {
            "SPECKLE_SERVER": emu.url,
            "SPECKLE_APP_ID": creds["app_id"],
            "SPECKLE_APP_SECRET": creds["app_secret"],
            "SPECKLE_REDIRECT_URI": redirect,
        }
        server = JupyterServer(frontend, root_dir=tmp / "root", tmp=tmp, extra_env=env, port=port)
        server.start()
        try:
            yield Stack(frontend, emu, server)
        finally:
            server.stop()


@pytest.fixture
def open_notebook(
    stack: Stack, browser: Any, request: pytest.FixtureRequest
) -> Iterator[Callable[[list[str]], Session]]:
    """`open_notebook(cells)`: a fresh notebook with these code cells, open in a fresh browser context with its
    kernel idle. Afterwards its kernel is shut down and the Lab workspace and settings are reset."""
    sessions: list[Session] = []

    def open_(cells: list[str]) -> Session:
        jupyter = stack.jupyter
        slug = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:60]
        name = f"{slug}-{secrets.token_hex(3)}.ipynb"
        path = write_notebook(jupyter.root_dir / name, cells)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        problems: list[str] = []
        page = context.new_page()
        page.on("pageerror", lambda err: problems.append(f"pageerror: {err}"))
        page.on("console", lambda msg: problems.append(f"console.{msg.type}: {msg.text}")
                if msg.type in ("error", "warning") else None)
        ledger = SecretLedger(stack.emulator)
        ledger.watch(context)
        record_speckle_auth_traffic(context, problems)
        url = jupyter.notebook_url(name, workspace=f"w{secrets.token_hex(4)}")
        page.goto(f"{url}{'&' if '?' in url else '?'}token={jupyter.token}")
        ui = NotebookUI(page, stack.frontend)
        session = Session(stack, context, page, ui, path, ledger, problems)
        sessions.append(session)
        try:
            ui.wait_for_kernel(timeout=60)
        except Exception as err:
            raise AssertionError(f"the notebook's kernel never became idle: {err}\n{session.diagnostics()}") from None
        return session

    yield open_
    for session in sessions:
        session.context.close()
    stack.jupyter.shutdown_kernels()
    stack.jupyter.reset_browser_state()
