"""The extension app as Jupyter and its users see it: its version and description, its options listed with their
help texts, and a clean stop after a start whose configuration failed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.processes import start_server

import speckle_nb_auth
from speckle_nb_auth.serverext import SpeckleAuthApp
from speckle_nb_auth.serverext.__main__ import main as serverext_main

# A server entry that cannot be read: the extension fails while it makes its settings.
FAILING_CONFIG = '''
from collections.abc import Mapping


class Unreadable(Mapping):
    def __getitem__(self, key):
        raise RuntimeError("this server entry cannot be read")

    def __iter__(self):
        raise RuntimeError("this server entry cannot be read")

    def __len__(self):
        raise RuntimeError("this server entry cannot be read")


c.ServerApp.jpserver_extensions = {"speckle_nb_auth": True}
c.SpeckleAuthApp.servers = [Unreadable()]
'''


def test_the_app_reports_the_package_version_and_what_it_does() -> None:
    app = SpeckleAuthApp()
    assert app.version == speckle_nb_auth.__version__
    assert "Speckle" in app.description and app.description != "A Jupyter Application"


def test_the_documented_command_lists_every_option_with_its_help_text() -> None:
    result = subprocess.run([sys.executable, "-m", "speckle_nb_auth.serverext", "--help-all"],
                            capture_output=True, text=True, timeout=60, check=True)
    own = SpeckleAuthApp.class_own_traits(config=True)
    assert own, "SpeckleAuthApp declares no options"
    for name, trait in own.items():
        assert f"--SpeckleAuthApp.{name}=" in result.stdout
        first_words = " ".join(trait.help.split()[:4])
        assert first_words in " ".join(result.stdout.split()), name
    assert "ServerApp." not in result.stdout  # only the extension's own options


def test_the_command_refuses_other_arguments_with_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert serverext_main(["--start"]) == 2
    assert capsys.readouterr().err.startswith("usage: python -m speckle_nb_auth.serverext")
    assert serverext_main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == speckle_nb_auth.__version__


def test_a_start_whose_configuration_failed_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "jupyter_server_config.py"
    config.write_text(FAILING_CONFIG)
    log = tmp_path / "server.log"
    proc = start_server(
        [sys.executable, "-m", "jupyter_server", f"--config={config}", "--ServerApp.ip=127.0.0.1",
         "--ServerApp.port=0", "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
         f"--ServerApp.root_dir={tmp_path}"],
        log=log, cwd=tmp_path, ready=lambda: "is running at" in log.read_text(),
        what="Jupyter with a configuration the extension fails on",
    )
    try:
        text = log.read_text()
        assert "is running at" in text, text
        assert "speckle_nb_auth | extension failed loading" in text, text
        # When: SIGTERM
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # Then: the server stops within seconds, and nothing failed while it stopped
        assert proc.wait(15) == 0, log.read_text()
        assert time.monotonic() - started < 10
        tail = log.read_text().split("received signal 15", 1)[1]
        assert "Traceback" not in tail and "Error" not in tail, tail
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
