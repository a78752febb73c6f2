"""Real Jupyter servers as subprocesses on loopback (JupyterLab 4, Notebook 7), set up as a newcomer's would be
but with nothing of the developer's: no Speckle credentials, desktop accounts, Jupyter or IPython configuration,
and the in-memory keyring for their kernels; and notebooks written to disk for them. The browser and hub tests
drive them in Chromium (support/jupyter_ui.py); tests/kernel/test_kernel_link.py talks to their kernels.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support import TESTS
from support.memory_keyring import KEYRING_ENV  # every browser/hub test's kernel uses it
from support.processes import LOOPBACK, answers, free_port, http_client, is_root, start_server, stop_process

SERVER_START_TIMEOUT = 60.0
SPECKLE_VARIABLES = ("SPECKLE_TOKEN", "SPECKLE_SERVER", "SPECKLE_APP_ID", "SPECKLE_APP_SECRET",
                     "SPECKLE_REDIRECT_URI")


def clean_environment(tmp: Path) -> dict[str, str]:
    """The environment for a Jupyter process: no developer Speckle credentials, desktop accounts, Jupyter or
    IPython configuration; the in-memory keyring for kernels; no proxies."""
    env = {key: value for key, value in os.environ.items() if key not in SPECKLE_VARIABLES}
    for key in list(env):
        if key.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            del env[key]
    for name in ("config", "data", "runtime", "ipython", "desktop-accounts"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        IPYTHONDIR=str(tmp / "ipython"),
        SPECKLE_USERDATA_PATH=str(tmp / "desktop-accounts"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p),
        **KEYRING_ENV,
    )
    return env


# --- JupyterLab settings ----------------------------------------------------------------------------------------

NOTIFICATION_SETTINGS = ("@jupyterlab/apputils-extension", "notification",
                         {"fetchNews": "false", "checkForUpdates": False})
WIDGET_SETTINGS = ("@jupyter-widgets/jupyterlab-manager", "plugin", {"saveState": True})
LIGHT_THEME_SETTINGS = ("@jupyterlab/apputils-extension", "themes", {"theme": "JupyterLab Light"})


def write_settings(settings_dir: Path, entries: Iterable[tuple[str, str, Mapping[str, Any]]]) -> None:
    """(Re)write the user settings: the news notification silenced, widget state saved, the light theme.
    jupyterlab_server reads these files on every request, so rewriting them resets a running server."""
    if settings_dir.exists():
        shutil.rmtree(settings_dir)
    for package, plugin, values in entries:
        target = settings_dir / package / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


DEFAULT_SETTINGS = (NOTIFICATION_SETTINGS, WIDGET_SETTINGS, LIGHT_THEME_SETTINGS)


# --- a Jupyter server -------------------------------------------------------------------------------------------


@dataclass
class JupyterServer:
    """JupyterLab 4 (`frontend="lab"`) or Notebook 7 (`"notebook"`) as a subprocess on loopback."""

    frontend: str
    root_dir: Path
    tmp: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def settings_dir(self) -> Path:
        return self.tmp / "settings"

    @property
    def workspaces_dir(self) -> Path:
        return self.tmp / "workspaces"

    @property
    def log_path(self) -> Path:
        return self.tmp / f"jupyter-{self.frontend}.log"

    def command(self) -> list[str]:
        module, app = {"lab": ("jupyterlab", "LabApp"), "notebook": ("notebook", "JupyterNotebookApp")}[self.frontend]
        args = [
            sys.executable, "-m", module,
            "--no-browser",
            f"--ip={LOOPBACK}",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--{app}.workspaces_dir={self.workspaces_dir}",
            f"--{app}.user_settings_dir={self.settings_dir}",
            f"--{app}.expose_app_in_browser=True",
            "--ServerApp.log_level=INFO",
        ]
        if is_root():
            args.append("--allow-root")
        return args

    def start(self) -> JupyterServer:
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.workspaces_dir.mkdir(parents=True, exist_ok=True)
        write_settings(self.settings_dir, DEFAULT_SETTINGS)
        env = clean_environment(self.tmp)
        env.update(
            JUPYTERLAB_SETTINGS_DIR=str(self.settings_dir),
            JUPYTERLAB_WORKSPACES_DIR=str(self.workspaces_dir),
            **self.extra_env,
        )
        self.proc = start_server(self.command(), log=self.log_path, cwd=self.root_dir, env=env, ready=self.ready,
                                 what=f"Jupyter ({self.frontend}) at {self.url}", timeout=SERVER_START_TIMEOUT)
        return self

    def ready(self) -> bool:
        """Whether the server is up: it answers its REST API's status."""
        return answers(self.api_url("api/status"), token=self.token)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def api_url(self, path: str) -> str:
        return f"{self.url}{path}"

    def api(self) -> httpx.Client:
        return http_client(headers={"Authorization": f"token {self.token}"})

    def notebook_url(self, name: str, workspace: str) -> str:
        if self.frontend == "lab":
            return f"{self.url}lab/workspaces/{workspace}/tree/{name}?reset"
        return f"{self.url}notebooks/{name}"

    def shutdown_kernels(self) -> None:
        """Stop every kernel: a test's kernel must not keep one of the two cores busy for the next test."""
        with self.api() as http:
            for session in http.get(self.api_url("api/sessions")).json():
                http.delete(self.api_url(f"api/sessions/{session['id']}"))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def reset_browser_state(self) -> None:
        """A fresh Lab workspace and fresh user settings for the next test."""
        shutil.rmtree(self.workspaces_dir, ignore_errors=True)
        self.workspaces_dir.mkdir(parents=True)
        write_settings(self.settings_dir, DEFAULT_SETTINGS)


# --- notebooks on disk ------------------------------------------------------------------------------------------


def write_notebook(path: Path, sources: Iterable[str]) -> Path:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"cell-{index}", "metadata": {}, "outputs": [],
         "source": source}
        for index, source in enumerate(sources)
    ]
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(notebook, indent=1))
    return path
