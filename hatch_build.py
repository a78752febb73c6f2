"""The package's build hook: the prebuilt JupyterLab extension (frontend/), as JupyterLab's extension template
builds it (hatch-jupyter-builder running `jlpm install` and `jlpm build:prod`), into speckle_nb_auth/labextension/,
which the wheel ships in share/jupyter/labextensions/speckle-nb-auth/ beside install.json.

Built once, and only when asked (`SPECKLE_NB_AUTH_BUILD_LABEXTENSION=1`, which `scripts/bootstrap.sh` sets, so
`make test` and `make demo` build it): pre-commit installs the token-guard hook from a clone of this repository,
and must not need Node.js and a 400 MB `jlpm install` for it. An sdist carries the build, so a wheel made from
it needs no Node.js; a wheel made without a build says so, and its Python package works without the extension.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILT = Path("speckle_nb_auth", "labextension")
ASK = "SPECKLE_NB_AUTH_BUILD_LABEXTENSION"
SHARE = "share/jupyter/labextensions/speckle-nb-auth"


class LabExtensionHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def _to_build(self) -> bool:
        root = Path(self.root)
        asked = os.environ.get(ASK) == "1" and (root / "frontend").is_dir()
        return asked and not (root / BUILT / "package.json").is_file()

    def dependencies(self) -> list[str]:
        # jlpm is JupyterLab's; asked for only when there is something to build
        return ["hatch-jupyter-builder>=0.9.1", "jupyterlab>=4.6,<5"] if self._to_build() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        if self._to_build():
            if not shutil.which("node"):
                raise RuntimeError(f"{ASK}=1 asks to build frontend/, which needs Node.js 20+: install it.")
            from hatch_jupyter_builder import npm_builder

            npm_builder(self.target_name, version, path=str(root / "frontend"), build_cmd="build:prod", npm=["jlpm"])
        built = root / BUILT
        if self.target_name != "wheel":
            return
        if not (built / "package.json").is_file():
            warnings.warn("speckle-nb-auth: built without its JupyterLab extension (the status bar item); "
                          f"{ASK}=1, with Node.js, builds it from frontend/.", stacklevel=1)
            return
        for path in sorted(p for p in built.rglob("*") if p.is_file()):
            build_data["shared_data"][str(path)] = f"{SHARE}/{path.relative_to(built).as_posix()}"
        build_data["shared_data"][str(root / "install.json")] = f"{SHARE}/install.json"
