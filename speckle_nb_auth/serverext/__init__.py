"""The Jupyter server extension: starts a Speckle login, receives its callback, exchanges the code with the
app secret (which never leaves this process) and hands the token, once, to the browser tab that started it.

    _app.py       SpeckleAuthApp: configuration traits, routes, start-up check, shutdown
    _handlers.py  the Tornado routes under <base_url>speckle-auth/: who is asking, and Jupyter's Authorizer
    _relay.py     on a hub with the login service: the routes that need an app secret, forwarded to it

What the routes do is the login core's (`speckle_nb_auth.core`), shared with the hub's login service.
"""

from ._app import SpeckleAuthApp

__all__ = ["SpeckleAuthApp"]
