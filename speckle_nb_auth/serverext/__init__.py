"""The Jupyter server extension: starts a Speckle login, receives its callback, exchanges the code with the
app secret (which never leaves this process) and hands the token, once, to the browser tab that started it.

    _app.py       SpeckleAuthApp: configuration traits, routes, start-up check, shutdown
    _config.py    the configured Speckle servers and the redirect URI, checked (no Tornado)
    _flows.py     the logins in progress, in memory: single use, bounded, expiring (no Tornado)
    _logins.py    what the routes do: start, finish from the callback, refresh (no Tornado)
    _handlers.py  the Tornado routes under <base_url>speckle-auth/
    _pages.py     the result pages and their headers
"""

from ._app import SpeckleAuthApp

__all__ = ["SpeckleAuthApp"]
