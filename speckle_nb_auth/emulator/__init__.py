"""A local Speckle server that answers as the real one does: `Emulator` in-process, `speckle-emulator`
as a CLI.

    from speckle_nb_auth.emulator import Emulator
    with Emulator(redirect_url="http://127.0.0.1:8888/speckle-auth/callback") as emu:
        emu.url, emu.credentials["pat"]

Needs the `emulator` extra (graphql-core): pip install "speckle-nb-auth[emulator]".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._emulator import Emulator

__all__ = ["Emulator"]


def __getattr__(name: str) -> object:
    # Imported on first use, so the CLI can say which extra is missing instead of a traceback.
    if name == "Emulator":
        from ._emulator import Emulator

        return Emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
