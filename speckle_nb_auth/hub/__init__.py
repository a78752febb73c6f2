"""JupyterHub: the hub's Speckle login service, the one process of a hub that holds the app secret.

In `jupyterhub_config.py`:

    from speckle_nb_auth.hub import configure
    redirect_url = configure(c, server="https://app.speckle.systems", app_id="...",
                             app_secret_env="SPECKLE_APP_SECRET", public_url="https://hub.example.org")

    _configure.py  configure(): the managed service, its scopes, and what users' servers need
    _service.py    the service's Tornado app (HubOAuth for browsers, HubAuth for users' servers)
    _owners.py     which hub user owns each login and each refresh token handed out
    _main.py       `python -m speckle_nb_auth.hub`, as JupyterHub starts it
"""

from ._configure import SERVICE_NAME, configure

__all__ = ["SERVICE_NAME", "configure"]
