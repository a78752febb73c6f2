"""`python -m speckle_nb_auth login|status|logout|revoke` (the `speckle-nb-auth` command): see `_cli`."""

from __future__ import annotations

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
