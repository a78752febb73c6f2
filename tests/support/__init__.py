"""What the tests share that is neither a test nor a fixture: plain helpers, imported as `support.<module>`
(pytest's `pythonpath` puts tests/ on the path; a kernel or CLI the tests start gets it on PYTHONPATH).

speckle          plays Speckle's web frontend without a browser: the user's consent, a token pair, a PAT
processes        ports, polling, and the one way to start a server subprocess and wait until it answers
memory_keyring   the in-memory keyring backend of the tests and of the kernels and commands they start
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
