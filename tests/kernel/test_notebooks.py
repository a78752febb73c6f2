"""The notebooks in notebooks/ run top to bottom against the emulator, signing in from the environment (the
browser's Run All with a person signing in is tests/browser/test_notebooks_run_all.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from support import REPO, TESTS
from support.memory_keyring import BACKEND

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


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


def errors(nb: Any) -> list[str]:
    return [f"{out.get('ename')}: {out.get('evalue')}" for cell in nb.cells for out in cell.get("outputs", [])
            if out.get("output_type") == "error"]


def signed_in_by_environment(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    creds: dict[str, Any] = emulator.credentials
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    monkeypatch.setenv("SPECKLE_TOKEN", creds["pat"])
    monkeypatch.setenv("SPECKLE_APP_ID", creds["app_id"])
    monkeypatch.setenv("SPECKLE_REDIRECT_URI", creds["redirect_url"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", BACKEND)
    return creds


def execute(nb: Any, where: Path) -> None:
    NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(where)}},
                   store_widget_state=True).execute()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch,
                                     tmp_path: Path) -> None:
    creds = signed_in_by_environment(emulator, monkeypatch)
    nb = nbformat.read(path, as_version=4)
    execute(nb, tmp_path)
    assert errors(nb) == []
    text = outputs_text(nb)
    assert creds["users"][0]["name"] in text
    if path.stem == "jupyterhub-admin-guide":
        assert "OK" in text and "MISMATCH" not in text
        pink = [o for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
        assert pink == [], pink  # the configure cell once printed a warning that read as an error
    saved = tmp_path / path.name
    nbformat.write(nb, saved)
    raw = saved.read_text()
    assert creds["pat"] not in raw and creds["pat"][-8:] not in raw


def test_the_quickstart_without_specklepy_says_so_and_runs_on(emulator: Any, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """`make demo` installs no specklepy (nor does a plain `pip install speckle-nb-auth`): the specklepy cell
    says how to get it, and the cells after it still run."""
    creds = signed_in_by_environment(emulator, monkeypatch)
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    # this kernel cannot import specklepy, as where it is not installed
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nsys.modules['specklepy'] = None"))
    execute(nb, tmp_path)
    assert errors(nb) == []
    text = outputs_text(nb)
    assert 'specklepy is not installed, so this step is skipped: pip install "speckle-nb-auth[specklepy]"' in text
    assert creds["users"][0]["name"] in text
    assert "True" in str(nb.cells[-2].outputs[0]["data"]["text/plain"])  # get_client() is speckle, after it
