"""`python -m speckle_nb_auth.hub`: the hub's Speckle login service (JupyterHub starts it)."""

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())
