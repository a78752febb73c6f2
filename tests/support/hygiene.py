"""Token hygiene's set-up: `.env` files in temporary git repositories (the `repo` fixture is in
tests/kernel/conftest.py), and days as the emulator's clock counts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

DAY = 24 * 3600.0


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)


def write_env(folder: Path, **values: str) -> Path:
    path = folder / ".env"
    path.write_text("# settings\n" + "".join(f"{k}={v}\n" for k, v in values.items()))
    return path
