"""The package keeps the shape a newcomer can read (see CONTRIBUTING's module map): small classes and modules,
a login core with no Tornado and no Jupyter in it, a hub service that borrows nothing from the server
extension, one module that makes a public-app sign-in, and tests that import no other test module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "speckle_nb_auth"
MAX_CLASS = 300
MAX_MODULE = 550


def modules(where: Path) -> list[Path]:
    return sorted(p for p in where.rglob("*.py") if "emulator" not in p.relative_to(PACKAGE).parts)


def imported(path: Path) -> set[str]:
    """The absolute names of the modules `path` imports (relative imports resolved)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def inserts_into_sys_path(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "insert":
            if ast.unparse(node.func.value) == "sys.path":
                return True
    return False


def test_no_class_and_no_module_is_too_long_to_read() -> None:
    too_long = []
    for path in modules(PACKAGE):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE:
            too_long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_CLASS:
                    too_long.append(f"{path.relative_to(ROOT)}: class {node.name} has {length} lines")
    assert not too_long, too_long


def test_the_hub_imports_nothing_of_the_server_extension() -> None:
    found = {str(p.relative_to(ROOT)): sorted(n for n in imported(p) if n.startswith("speckle_nb_auth.serverext"))
             for p in modules(PACKAGE / "hub")}
    assert not {path: names for path, names in found.items() if names}


def test_the_login_core_loads_no_tornado_and_no_jupyter() -> None:
    code = ("import sys, speckle_nb_auth.core._requests, speckle_nb_auth.core._wire\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tornado', 'jupyter_server', 'jupyterhub', "
            "'jupyter_core', 'ipykernel', 'IPython', 'anywidget'}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr
    frameworks = ("tornado", "jupyter_server")
    direct = {str(p.relative_to(ROOT)): sorted(n for n in imported(p) if n.split(".")[0] in frameworks)
              for p in modules(PACKAGE / "core")}
    assert not {path: names for path, names in direct.items() if names}


def test_a_public_app_sign_in_is_made_in_one_module() -> None:
    """Its secret, its loopback listener and the parsing of a pasted address are used by `_public_app` alone;
    the terminal, the kernel and the extension go through it."""
    users = {
        name: sorted(str(p.relative_to(ROOT)) for p in modules(PACKAGE)
                     if name in p.read_text(encoding="utf-8") and p.name not in ("_public_app.py", "_receiver.py"))
        for name in ("PUBLIC_APP_SECRET", "LoopbackReceiver(", "code_from_pasted(")
    }
    assert users == {name: [] for name in users}
    for caller in ("_cli.py", "_kernel_login.py", "core/_logins.py"):
        assert "PublicLogin" in (PACKAGE / caller).read_text(encoding="utf-8") or "public_login" in (
            PACKAGE / caller).read_text(encoding="utf-8"), caller


def test_no_test_module_imports_another() -> None:
    tests = ROOT / "tests"
    names = {p.stem for p in tests.rglob("test_*.py")} | {"conftest"}
    offenders = {}
    for path in tests.rglob("*.py"):
        found = sorted(n for n in imported(path) if n.split(".")[-1] in names or n.split(".")[0] in names)
        if found or inserts_into_sys_path(path):
            offenders[str(path.relative_to(ROOT))] = found or ["sys.path.insert"]
    assert not offenders, offenders
