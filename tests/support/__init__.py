"""What the tests share that is neither a test nor a fixture: plain helpers, imported as `support.<module>`
(pytest's `pythonpath` puts tests/ on the path; a kernel or command the tests start gets it on PYTHONPATH).

speckle           Speckle's web frontend without a browser: `consent` (the user's "Authorize"), and what uses it
processes         ports, polling, and `start_server`, the one way to start a server subprocess and wait for it
memory_keyring    the in-memory keyring backend of the tests and of the kernels and commands they start
panel             the login panel's kernel half as anywidget drives it (fixtures: fixtures_panel)
routes            the server extension's routes as a browser uses them (fixtures: tests/serverext/conftest.py)
cli               the terminal login as a subprocess, read as it prints
hygiene           `.env` files in git repositories
tracebacks        whether a verbose traceback shows a secret
faults            what the two halves of the fault battery share
strategies        Hypothesis strategies of the bad-input batteries against the routes and the panel
fake_hub          a stand-in for JupyterHub's REST API
jupyter_server    real Jupyter servers (JupyterLab, Notebook 7) as subprocesses, notebooks on disk
jupyter_ui        Chromium driving a notebook, the panel and Speckle's pages (fixtures: fixtures_browser)
jupyterhub        a real JupyterHub and its users in Chromium
service_hub       a real JupyterHub with the Speckle login service and real Unix users
secret_probe      run in a hub user's kernel: what that user can read
demo              scripts/demo.py as a subprocess
fixtures_panel    plugin: the panel fixtures (kernel tests, and a server-extension battery)
fixtures_browser  plugin: the Playwright `browser` fixture (browser and hub tests)
"""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
