"""`%load_ext speckle_nb_auth` adds the line magic `%speckle_login [server] [--name NAME]`."""

from __future__ import annotations

import shlex
from typing import Any

__all__ = ["register", "speckle_login"]

USAGE = "usage: %speckle_login [server] [--name NAME]"


def parse_line(line: str) -> tuple[str | None, str]:
    """`[server] [--name NAME]` -> (server, name); `ValueError` with the usage on anything else."""
    try:
        words = shlex.split(line)
    except ValueError:
        raise ValueError(USAGE) from None
    server: str | None = None
    name = "speckle"
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--name" and i + 1 < len(words):
            name = words[i + 1]
            i += 2
            continue
        if word.startswith("--name="):
            name = word.split("=", 1)[1]
        elif word.startswith("-") or server is not None:
            raise ValueError(USAGE)
        else:
            server = word
        i += 1
    return server, name


def speckle_login(line: str = "") -> Any:
    """Show the Speckle login panel: `%speckle_login [server] [--name NAME]`."""
    from IPython.core.error import UsageError

    from ._login import login

    try:
        server, name = parse_line(line)
        return login(server, name=name)
    except ValueError as err:  # a bad server address or variable name, or bad arguments
        raise UsageError(str(err)) from None


def register(ipython: Any) -> None:
    ipython.register_magic_function(speckle_login, magic_kind="line", magic_name="speckle_login")
