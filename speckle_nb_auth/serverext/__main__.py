"""`python -m speckle_nb_auth.serverext`: the server extension's options, with their help texts.

The extension runs inside `jupyter server`, `jupyter lab` or `jupyter notebook`, whose `--help-all` lists only
Jupyter's own options, so this is where the extension's are listed.
"""

from __future__ import annotations

import sys

from ._app import SpeckleAuthApp

USAGE = "usage: python -m speckle_nb_auth.serverext [--help-all | --version]"


def options_help() -> str:
    """The options SpeckleAuthApp adds to Jupyter's, each with its type, default and help text."""
    lines = [
        f"{SpeckleAuthApp.description}",
        "",
        "Set these in jupyter_server_config.py as c.SpeckleAuthApp.<option> = <value>.",
        "",
    ]
    for name in sorted(SpeckleAuthApp.class_own_traits(config=True)):
        lines.append(SpeckleAuthApp.class_get_trait_help(SpeckleAuthApp.class_traits()[name]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in ([], ["-h"], ["--help"], ["--help-all"]):
        print(options_help())
        return 0
    if args in (["-V"], ["--version"]):
        print(SpeckleAuthApp.version)
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
