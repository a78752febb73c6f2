"""`Secret`: a token, refresh token, access code, verifier or app secret that never shows itself.

A traceback printed with its frames' values (IPython's `%xmode Verbose`, `traceback`'s `capture_locals`, a
debugger) shows each value by `repr`. A `Secret` is the `str` it holds wherever it is used (an HTTP body, a
header, JSON, the keyring) but its `repr` is at most its last four characters, so a failing line that holds one
prints nothing anyone could use. Slicing or joining one gives a plain `str`: wrap what has to stay secret.
"""

from __future__ import annotations

__all__ = ["Secret", "mask"]


def mask(secret: str | None) -> str:
    """What may be shown of a secret: its last 4 characters at most."""
    if not secret:
        return "None"
    return f"'…{secret[-4:]}'" if len(secret) >= 16 else "'…'"


class Secret(str):
    __slots__ = ()

    def __repr__(self) -> str:
        return mask(self)
