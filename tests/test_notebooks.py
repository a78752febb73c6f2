"""The notebooks in notebooks/ run top to bottom against the emulator, signing in from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def outputs_text(nb: Any) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


def test_there_are_three_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "class-walkthrough.ipynb", "jupyterhub-admin-guide.ipynb", "quickstart.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    creds = emulator.credentials
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    monkeypatch.setenv("SPECKLE_TOKEN", creds["pat"])
    monkeypatch.setenv("SPECKLE_APP_ID", creds["app_id"])
    monkeypatch.setenv("SPECKLE_REDIRECT_URI", creds["redirect_url"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "memory_keyring.MemoryKeyring")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}},
                   store_widget_state=True).execute()
    text = outputs_text(nb)
    assert creds["users"][0]["name"] in text
    if path.stem == "jupyterhub-admin-guide":
        assert "OK" in text and "MISMATCH" not in text
    saved = tmp_path / path.name
    nbformat.write(nb, saved)
    raw = saved.read_text()
    assert creds["pat"] not in raw and creds["pat"][-8:] not in raw
