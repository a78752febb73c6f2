"""Fixtures of the kernel-side tests (login(), the panel's kernel half, the CLI, notebooks run in real kernels).
The panel fixtures (`shell`, `panels`, `_fresh_registry`) are support/fixtures_panel.py's."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.hygiene import git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit, for `.env` files to live in."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ada@example.com")
    git(root, "config", "user.name", "Ada")
    git(root, "config", "commit.gpgsign", "false")
    (root / "README.md").write_text("A project.\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "start")
    return root
