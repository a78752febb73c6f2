"""What ships: the sdist and the wheel built from it (as `uv build` makes them for a release), their metadata and
contents, the declared dependencies against the imports, and the project's pre-commit configuration."""

from __future__ import annotations

import email.parser
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from importlib import import_module
from pathlib import Path

import pytest
from support import REPO as ROOT

import speckle_nb_auth


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, then the wheel built from that sdist (uv's default order)."""
    out = tmp_path_factory.mktemp("dist")
    built = run("uv", "build", "--quiet", "--out-dir", str(out), str(ROOT))
    assert built.returncode == 0, built.stdout + built.stderr
    (sdist,), (wheel,) = out.glob("*.tar.gz"), out.glob("*.whl")
    return sdist, wheel


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(whl.read(name).decode())


def test_the_wheel_ships_the_licence_and_the_type_marker(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert "Apache License" in whl.read(licence).decode()
    assert "speckle_nb_auth/py.typed" in names
    assert any(n.endswith("etc/jupyter/jupyter_server_config.d/speckle_nb_auth.json") for n in names)
    meta = wheel_metadata(wheel)
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Version"] == speckle_nb_auth.__version__


def test_the_sdist_holds_what_a_rebuild_and_a_reader_need(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in ("LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", "README.md", "pyproject.toml",
                   "speckle_nb_auth/py.typed", "jupyter-config/server-config/speckle_nb_auth.json"):
        assert needed in names, needed
    assert not any(name.startswith((".venv", "test-output/", ".ci/")) for name in names)


def test_the_classifiers_say_what_ships(dists: tuple[Path, Path]) -> None:
    meta = wheel_metadata(dists[1])
    classifiers = meta.get_all("Classifier") or []
    versions = sorted(c.rsplit(" ", 1)[1] for c in classifiers if c.startswith("Programming Language :: Python :: 3."))
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert meta["Requires-Python"] == ">=3.10"
    assert "Typing :: Typed" in classifiers
    assert "Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt" in classifiers  # the status-bar item
    assert meta.get_all("Project-URL")


LABEXTENSION = "share/jupyter/labextensions/speckle-nb-auth/"


def test_the_wheel_ships_the_prebuilt_jupyterlab_extension_with_install_json(dists: tuple[Path, Path]) -> None:
    """Where JupyterLab finds a prebuilt extension: its package.json, its remoteEntry and install.json, which tells
    `jupyter labextension list` and the Extension Manager that pip installed it. RECORD lists them, so
    `pip uninstall` removes them; the sdist holds them built, so a wheel built from it needs no Node.js."""
    sdist, wheel = dists
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        shipped = [n.split(".data/data/", 1)[1] for n in names if ".data/data/" + LABEXTENSION in n]
        install = json.loads(whl.read(next(n for n in names if n.endswith(LABEXTENSION + "install.json"))))
        package = json.loads(whl.read(next(n for n in names if n.endswith(LABEXTENSION + "package.json"))))
        record = whl.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
    assert install == {"packageManager": "python", "packageName": "speckle-nb-auth",
                       "uninstallInstructions": install["uninstallInstructions"]}
    assert package["name"] == "speckle-nb-auth"
    assert package["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert LABEXTENSION + package["jupyterlab"]["_build"]["load"] in shipped
    assert all(name in record for name in shipped)
    assert not any(n.startswith("speckle_nb_auth/labextension/") for n in names)  # once, in share/ only
    with tarfile.open(sdist) as tar:
        held = tar.getnames()
    assert any(n.endswith("speckle_nb_auth/labextension/package.json") for n in held)
    assert any(n.endswith("frontend/src/index.ts") for n in held)
    assert not any("node_modules" in n for n in held)


def test_pip_installs_the_extension_where_jupyterlab_lists_it_and_uninstall_removes_it(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    """In a venv of its own: `jupyter labextension list` shows it enabled, OK and installed by pip (python);
    uninstalling the package leaves no trace of it."""
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    made = subprocess.run([*uv, "venv", "--seed", "--quiet", str(venv)], capture_output=True, timeout=120)
    assert made.returncode == 0, made.stderr
    python = str(venv / "bin" / "python")
    installed = subprocess.run([*uv, "pip", "install", "--quiet", "--python", python, str(dists[1]), "jupyterlab"],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr

    def listed() -> str:
        done = subprocess.run([str(venv / "bin" / "jupyter"), "labextension", "list"], capture_output=True, text=True,
                              timeout=120, env={"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(tmp_path)})
        return done.stdout + done.stderr

    before = listed()
    line = next((ln for ln in before.splitlines() if "speckle-nb-auth v" in ln), "")
    assert re.search(r"enabled.*OK.*\(python, speckle-nb-auth\)", line), before
    removed = subprocess.run([python, "-m", "pip", "uninstall", "--yes", "--quiet", "speckle-nb-auth"],
                             capture_output=True, text=True, timeout=120)
    assert removed.returncode == 0, removed.stderr
    assert not (venv / LABEXTENSION).exists()
    assert "speckle-nb-auth" not in listed()


def test_every_console_script_names_a_callable(dists: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dists[1]) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt"))
        lines = whl.read(name).decode().split("[console_scripts]", 1)[1].split("[", 1)[0].splitlines()
    scripts = dict(line.split(" = ", 1) for line in lines if " = " in line)
    assert set(scripts) == {"speckle-nb-auth", "speckle-emulator"}
    for target in scripts.values():
        module, _, attr = target.partition(":")
        assert callable(getattr(import_module(module), attr)), target


def test_a_users_strict_mypy_sees_the_packages_types(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text("import speckle_nb_auth\n\nversion: int = speckle_nb_auth.__version__\n")
    checked = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(user)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "import-untyped" not in checked.stdout, checked.stdout
    # a type from the package reached the user's code: a str is no int
    assert 'expression has type "str", variable has type "int"' in checked.stdout, checked.stdout


def test_twine_and_check_wheel_contents_accept_the_dists(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    twine = run("twine", "check", "--strict", str(sdist), str(wheel))
    assert twine.returncode == 0, twine.stdout + twine.stderr
    contents = run("check_wheel_contents", str(wheel))
    assert contents.returncode == 0, contents.stdout + contents.stderr


def test_the_declared_dependencies_are_the_imported_ones() -> None:
    deptry = run("deptry", "speckle_nb_auth")
    assert deptry.returncode == 0, deptry.stdout + deptry.stderr


def test_the_pre_commit_configuration_is_valid() -> None:
    check = run("pre_commit", "validate-config", ".pre-commit-config.yaml")
    assert check.returncode == 0, check.stdout + check.stderr
