"""A local Speckle server that answers as the real one does: `Emulator` in-process, `speckle-emulator`
as a CLI.

    from speckle_nb_auth.emulator import Emulator
    with Emulator(redirect_url="http://127.0.0.1:8888/speckle-auth/callback") as emu:
        emu.url, emu.credentials["pat"]

Needs the `emulator` extra (graphql-core): pip install "speckle-nb-auth[emulator]".
"""

from ._emulator import Emulator

__all__ = ["Emulator"]
