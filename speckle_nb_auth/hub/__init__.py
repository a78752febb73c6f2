"""JupyterHub: the hub's Speckle login service, the one process of a hub that holds the app secret.

In `jupyterhub_config.py`:

    from speckle_nb_auth.hub import configure
    redirect_url = configure(c, server="https://app.speckle.systems", app_id="...",
                             app_secret_env="SPECKLE_APP_SECRET", public_url="https://hub.example.org")

Or, to log people in to the hub with Speckle (their kernels then start signed in), `configure(c, ..., login=True)`.

    _configure.py      configure(): the managed service, its scopes, and what users' servers need
    _authenticator.py  SpeckleAuthenticator: the hub's login with Speckle, and the token route users' servers read
    _service.py        the service's Tornado app (HubOAuth for browsers, HubAuth for users' servers)
    _owners.py         which hub user owns each login and each refresh token handed out
    _main.py           `python -m speckle_nb_auth.hub`, as JupyterHub starts it
"""

from typing import Any

from ._configure import SERVICE_NAME, configure

__all__ = ["SERVICE_NAME", "SpeckleAuthenticator", "configure"]


def __getattr__(name: str) -> Any:
    # imported when asked for: configure() and the login service do not need oauthenticator
    if name == "SpeckleAuthenticator":
        from ._authenticator import SpeckleAuthenticator

        return SpeckleAuthenticator
    raise AttributeError(name)
