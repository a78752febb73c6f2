"""The panel in the other Jupyter frontends, in headless Chromium: nbclassic and Voila (as a server extension,
both on one Jupyter server with the extension and a registered app), and standalone Voila (no extension: the panel
offers what works there). A personal access token everywhere; "Log in with Speckle" where the extension runs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from support.jupyter_server import JupyterServer
from support.jupyter_ui import SCREENSHOTS, mint_pat, speckle_sign_in
from support.processes import LOOPBACK, answers, free_port, is_root

pytestmark = pytest.mark.browser

NOTEBOOK = "frontends.ipynb"
CELLS = ["from speckle_nb_auth import login\nlogin(wait=False)"]


def write_notebook(path: Path) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
              "source": source} for i, source in enumerate(CELLS)]
    path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))


@dataclass
class OtherServer(JupyterServer):
    """nbclassic's server (Voila's server extension is on in it too), or Voila on its own."""

    def command(self) -> list[str]:
        if self.frontend == "voila":
            return [sys.executable, "-m", "voila", str(self.root_dir / NOTEBOOK), "--no-browser",
                    f"--Voila.ip={LOOPBACK}", f"--port={self.port}", "--Voila.port_retries=0"]
        args = [sys.executable, "-m", "nbclassic", "--no-browser", f"--ip={LOOPBACK}", f"--port={self.port}",
                "--port-retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
                "--ServerApp.log_level=INFO"]
        return [*args, "--allow-root"] if is_root() else args

    def ready(self) -> bool:
        """Voila answers its page; nbclassic's server its REST API's status."""
        return answers(self.url + ("" if self.frontend == "voila" else "api/status"), token=self.token)


@contextmanager
def serve(frontend: str, tmp: Path) -> Iterator[tuple[Any, OtherServer]]:
    from speckle_nb_auth.emulator import Emulator

    (tmp / "root").mkdir()
    write_notebook(tmp / "root" / NOTEBOOK)
    port = free_port()
    redirect = f"http://{LOOPBACK}:{port}/speckle-auth/callback"
    with Emulator(host=LOOPBACK, port=0, redirect_url=redirect) as emu:
        creds = emu.credentials
        env = {"SPECKLE_SERVER": emu.url, "SPECKLE_APP_ID": creds["app_id"], "SPECKLE_APP_SECRET": creds["app_secret"],
               "SPECKLE_REDIRECT_URI": redirect}
        server = OtherServer(frontend, root_dir=tmp / "root", tmp=tmp, extra_env=env, port=port)
        server.start()
        try:
            yield emu, server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def nbclassic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, OtherServer]]:
    """nbclassic's Jupyter server: the extension, a registered app, and Voila's server extension."""
    with serve("nbclassic", tmp_path_factory.mktemp("nbclassic")) as served:
        yield served


@pytest.fixture(scope="module")
def voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, OtherServer]]:
    """Voila on its own: no server extension of ours."""
    with serve("voila", tmp_path_factory.mktemp("voila")) as served:
        yield served


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    for attempt in range(3):  # nbclassic may re-render the output area while the shot is taken
        try:
            page.locator(".snb-panel").first.screenshot(path=str(path), animations="disabled")
            break
        except Exception:
            if attempt == 2:
                raise


def open_page(browser: Any, url: str) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(url)
    return context, page


def enter_pat(panel: Any, token: str) -> None:
    panel.locator(".snb-pat-box summary").click()
    panel.locator("input.snb-pat-input").fill(token)
    panel.locator("input.snb-pat-input").press("Enter")


def signed_in(panel: Any, name: str) -> None:
    expect(panel.locator(".snb-user-name")).to_have_text(name, timeout=30_000)
    expect(panel.locator("button.snb-logout")).to_be_visible()


def test_nbclassic_finds_the_extension(nbclassic: tuple[Any, OtherServer], browser: Any) -> None:
    emu, server = nbclassic
    context, page = open_page(browser, f"{server.url}nbclassic/notebooks/{NOTEBOOK}?token={server.token}")
    try:
        # the kernel connected and ipywidgets' notebook extension loaded (it renders the panel's output)
        page.wait_for_function("() => window.Jupyter?.notebook?.kernel?.is_connected()"
                               " && window.Jupyter.notebook.kernel.widget_manager !== undefined", timeout=60_000)
        panel = page.locator(".snb-panel")
        # nbclassic sometimes shows no widget output for a cell run right after the page loaded (its widget
        # manager was not ready for the comm, so no view is made): as a person would, run the cell again
        for attempt in range(3):
            page.evaluate("() => Jupyter.notebook.execute_all_cells()")
            try:
                expect(panel).to_be_visible(timeout=10_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise AssertionError(page.locator("#notebook").inner_text()[:2000]) from None
        expect(panel.locator("button.snb-login")).to_be_enabled(timeout=30_000)  # the extension was found
        expect(panel.locator(".snb-noext")).to_be_hidden()
        shot(page, "nbclassic-ready.png")
        with context.expect_page() as opened:
            panel.locator("button.snb-login").click()
        ada = emu.credentials["users"][0]
        speckle_sign_in(opened.value, ada["email"], ada["password"], "Authorize")
        signed_in(panel, ada["name"])
        panel.locator("button.snb-logout").click()
        expect(panel.locator("button.snb-login")).to_be_visible()
        enter_pat(panel, mint_pat(emu))
        signed_in(panel, ada["name"])
    finally:
        context.close()


def test_voila_as_a_server_extension_finds_the_extension(nbclassic: tuple[Any, OtherServer], browser: Any) -> None:
    emu, server = nbclassic
    context, page = open_page(browser, f"{server.url}voila/render/{NOTEBOOK}?token={server.token}")
    try:
        panel = page.locator(".snb-panel")
        expect(panel.locator("button.snb-login")).to_be_enabled(timeout=60_000)
        expect(panel.locator(".snb-noext")).to_be_hidden()
        shot(page, "voila-extension-ready.png")
        with context.expect_page() as opened:
            panel.locator("button.snb-login").click()
        grace = emu.credentials["users"][1]
        speckle_sign_in(opened.value, grace["email"], grace["password"], "Authorize")
        signed_in(panel, grace["name"])
    finally:
        context.close()


def test_standalone_voila_offers_what_works_there(voila: tuple[Any, OtherServer], browser: Any) -> None:
    emu, server = voila
    context, page = open_page(browser, server.url)
    try:
        panel = page.locator(".snb-panel")
        note = panel.locator(".snb-noext")
        expect(note).to_be_visible(timeout=60_000)
        expect(note).to_contain_text("personal access token")
        expect(note).not_to_contain_text("refused")  # no server extension here is not an error
        shot(page, "voila-standalone.png")
        enter_pat(panel, mint_pat(emu))
        signed_in(panel, emu.credentials["users"][0]["name"])
    finally:
        context.close()
