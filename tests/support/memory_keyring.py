"""An in-memory keyring backend: the OS keyring cannot run here, so tests and test kernels use this one.

Selected with `PYTHON_KEYRING_BACKEND=support.memory_keyring.MemoryKeyring` (`BACKEND`; tests/ on `PYTHONPATH`),
or set directly with `keyring.set_keyring(MemoryKeyring())`. With `MEMORY_KEYRING_FILE` set, entries also persist
to that JSON file, so a restarted test kernel finds what the previous one stored (as an OS keyring would).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

BACKEND = "support.memory_keyring.MemoryKeyring"  # for PYTHON_KEYRING_BACKEND
KEYRING_ENV = {"PYTHON_KEYRING_BACKEND": BACKEND}


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[tuple[str, str], str] = {}
        path = os.environ.get("MEMORY_KEYRING_FILE")
        self._path = Path(path) if path else None
        if self._path and self._path.exists():
            for service, user, secret in json.loads(self._path.read_text()):
                self._entries[(service, user)] = secret

    def _save(self) -> None:
        if self._path:
            self._path.write_text(json.dumps([[s, u, p] for (s, u), p in self._entries.items()]))

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._entries[(service, username)] = password
        self._save()

    def delete_password(self, service: str, username: str) -> None:
        if self._entries.pop((service, username), None) is None:
            raise PasswordDeleteError("no such entry")
        self._save()

    def dump(self) -> dict[tuple[str, str], str]:
        return dict(self._entries)
