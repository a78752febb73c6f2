"""Run in a hub user's kernel: everything this user can read that could hold an app secret, written to a file
only they (and root) can read, for the test to search. Reads; never prints what it found."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

MAX_FILE = 1 << 20


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes()[:MAX_FILE].decode("utf-8", "replace")
    except OSError:
        return None


def _files(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        if path.is_file():
            text = _read(path)
            if text is not None:
                found[str(path)] = text
    return found


def _api(base: str, token: str, paths: list[str]) -> dict[str, str]:
    answers: dict[str, str] = {}
    with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=10, trust_env=False) as http:
        for path in paths:
            try:
                response = http.get(base.rstrip("/") + "/" + path)
                answers[path] = f"{response.status_code} {response.text}"
            except httpx.HTTPError as err:
                answers[path] = f"error {type(err).__name__}"
    return answers


def run(out: str) -> None:
    from jupyter_core.paths import jupyter_config_path, jupyter_data_dir, jupyter_runtime_dir

    environ: dict[str, str] = {}
    cmdlines: dict[str, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        text = _read(Path("/proc", pid, "environ"))
        if text is not None:
            environ[pid] = text
        text = _read(Path("/proc", pid, "cmdline"))
        if text is not None:
            cmdlines[pid] = text
    files: dict[str, str] = {}
    for directory in sorted({*jupyter_config_path(), jupyter_runtime_dir(), jupyter_data_dir()}):
        files.update(_files(Path(directory)))
    token = os.environ["JUPYTERHUB_API_TOKEN"]
    server = _api(os.environ["JUPYTERHUB_SERVICE_URL"], token, [
        "api/status", "api/kernels", "api/sessions", "api/kernelspecs", "api/contents", "api/me",
        "lab/api/settings", "speckle-auth/status",
    ])
    me = os.environ["JUPYTERHUB_USER"]
    hub = _api(os.environ["JUPYTERHUB_API_URL"], token, [
        "", "info", "user", f"users/{me}", "services", "services/speckle-auth", "users", "groups", "roles",
    ])
    result: dict[str, Any] = {"os.environ": dict(os.environ), "/proc/*/environ": environ,
                              "/proc/*/cmdline": cmdlines, "jupyter dirs": files, "server api": server,
                              "hub api": hub, "uid": os.getuid()}
    path = Path(out)
    path.write_text(json.dumps(result))
    path.chmod(0o600)
