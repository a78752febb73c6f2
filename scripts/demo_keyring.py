"""DEMO ONLY: a keyring backend that keeps entries in plain JSON in the demo's temporary folder, so "Remember me"
can be tried in `make demo` on a machine without an OS keyring. Never use it for real sign-ins: the file is not
encrypted (it is mode 0600, and the demo deletes it when it stops).

scripts/demo.py selects it for JupyterLab and its kernels with `PYTHON_KEYRING_BACKEND=demo_keyring.DemoKeyring`
(this folder on `PYTHONPATH`) and names the file in `SPECKLE_DEMO_KEYRING_FILE`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

FILE_VARIABLE = "SPECKLE_DEMO_KEYRING_FILE"


class DemoKeyring(KeyringBackend):
    """Demo-only file keyring: every call reads or rewrites the whole file, so all kernels see one store."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self._path = Path(os.environ[FILE_VARIABLE])

    def _load(self) -> dict[str, dict[str, str]]:
        if not self._path.exists():
            return {}
        loaded: dict[str, dict[str, str]] = json.loads(self._path.read_text())
        return loaded

    def _save(self, entries: dict[str, dict[str, str]]) -> None:
        # write aside, then rename: a kernel (or a test) reading meanwhile sees the old file or the new, never half
        staged = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(entries, out)
        os.replace(staged, self._path)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        entries = self._load()
        entries.setdefault(service, {})[username] = password
        self._save(entries)

    def delete_password(self, service: str, username: str) -> None:
        entries = self._load()
        if entries.get(service, {}).pop(username, None) is None:
            raise PasswordDeleteError("no such entry")
        self._save(entries)
