"""Each lower bound speckle-nb-auth declares is the version installed here.

Run with the Python of a venv made by `uv pip install --resolution lowest-direct ".[test]"`: when every `>=` bound
is exactly what got installed, the suite that runs next runs on the floors themselves, so they hold. A bound that
the resolver had to lift (another requirement needs more) is reported with the version to declare instead.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT = "speckle-nb-auth"


def declared(extras: set[str]) -> list[Requirement]:
    """The project's requirements for `extras`, with the extras its own extras name (`[emulator,specklepy]`)."""
    wanted, seen, found = set(extras), set(), []
    while wanted - seen:
        extra = (wanted - seen).pop()
        seen.add(extra)
        for line in requires(PROJECT) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            if canonicalize_name(req.name) == PROJECT:
                wanted |= req.extras
            elif req not in found:
                found.append(req)
    return found


def main(extras: list[str]) -> int:
    problems = []
    for req in sorted(declared(set(extras) | {""}), key=lambda r: canonicalize_name(r.name)):
        floors = [spec.version for spec in req.specifier if spec.operator == ">="]
        if not floors:
            continue
        try:
            installed = version(req.name)
        except PackageNotFoundError:
            problems.append(f"{req.name} is declared but not installed")
            continue
        mark = "ok" if Version(installed) == Version(floors[0]) else "LIFTED"
        print(f"  {req.name:<16} >={floors[0]:<10} installed {installed:<10} {mark}")
        if mark != "ok":
            problems.append(f"{req.name}: declared >={floors[0]}, but the lowest resolution installs {installed}: "
                            f"declare >={installed} in pyproject.toml")
    for problem in problems:
        print(f"floor check: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["test"]))
