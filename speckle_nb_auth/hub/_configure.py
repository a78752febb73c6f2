"""`configure(c, ...)`: the hub's Speckle login service in one call of `jupyterhub_config.py`."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any
from urllib.parse import urlsplit

__all__ = ["SERVICE_NAME", "configure"]

SERVICE_NAME = "speckle-auth"
DEFAULT_SERVICE_URL = "http://127.0.0.1:10101"
# JupyterHub's `server` role: what a user's server token may do by default, kept when adding the service's scope
SERVER_SCOPES = ("users:activity!user", "access:servers!server")

_log = logging.getLogger("speckle_nb_auth.hub")


class _FromHubEnvironment(str):
    """The value of one of the hub's own environment variables, read when JupyterHub starts the service (it
    calls what is callable in a service's environment): so the secret is neither in the configuration, which
    JupyterHub logs at debug level, nor in any command line. As text it is only the variable's name, which is
    what JupyterHub stores of it in its database (it warned at every start about an object it could not)."""

    name: str

    def __new__(cls, name: str) -> _FromHubEnvironment:
        made = super().__new__(cls, f"<the hub's ${name}>")
        made.name = name
        return made

    def __call__(self, spawner: Any) -> str:
        return os.environ.get(self.name, "")


def configure(
    c: Any,
    *,
    server: str,
    app_id: str,
    app_secret_env: str,
    public_url: str,
    name: str = SERVICE_NAME,
    service_url: str = DEFAULT_SERVICE_URL,
    bind_ip: str = "",
    state_file: str | None = None,
    python: str = sys.executable,
    login: bool = False,
) -> str:
    """Add the Speckle login service to JupyterHub's configuration `c` and return the redirect URL to register
    for the app on the Speckle server. With `login=True`, people log in to the hub itself with Speckle instead
    (`SpeckleAuthenticator`), and their kernels are signed in from the hub: see `_configure_login`.

    - the managed service `name` (`python -m speckle_nb_auth.hub`, at `service_url`, which the proxy and the
      users' servers must reach), with the app's id, and its secret from the hub's environment variable
      `app_secret_env` (read when the hub starts the service);
    - the scope `access:services!service=<name>` for every user (their browsers sign in to the service) and for
      their servers' API tokens (the extension relays to it);
    - for users' servers: SPECKLE_AUTH_SERVICE_URL, SPECKLE_AUTH_SERVICE_PREFIX and SPECKLE_SERVER, never the
      secret.

    `public_url` is the hub's address as browsers see it (https://hub.example.org). `bind_ip` is where the
    service listens when that is not the host of `service_url` (0.0.0.0 in a Kubernetes pod). `state_file` is where
    the service remembers to whom it handed each refresh token (as digests), so that a restarted service still
    renews sign-ins: by default `speckle-auth-owners.sqlite` beside the hub's own database (its working directory);
    "" keeps that in memory only."""
    base_url = _setting(c.JupyterHub, "base_url", "/") or "/"
    base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
    origin = urlsplit(public_url)
    if login:
        return _configure_login(c, server, app_id, app_secret_env, f"{origin.scheme}://{origin.netloc}{base_url}")
    if not os.environ.get(app_secret_env):
        _log.warning("The environment variable %s (app_secret_env) is not set in this hub's environment: the "
                     "Speckle login service will offer no registered app until it is.", app_secret_env)
    prefix = f"{base_url}services/{name}/"
    redirect_url = f"{origin.scheme}://{origin.netloc}{prefix}callback"
    environment: dict[str, Any] = {
        "SPECKLE_SERVER": server,
        "SPECKLE_APP_ID": app_id,
        "SPECKLE_APP_SECRET": _FromHubEnvironment(app_secret_env),
        "SPECKLE_REDIRECT_URI": redirect_url,
        "SPECKLE_AUTH_STATE_FILE": os.path.abspath("speckle-auth-owners.sqlite") if state_file is None else state_file,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if bind_ip:
        environment["SPECKLE_AUTH_BIND_IP"] = bind_ip
    entry: dict[str, Any] = {
        "name": name,
        "url": service_url,
        "command": [python, "-m", "speckle_nb_auth.hub"],
        "environment": environment,
        "oauth_no_confirm": True,  # the hub's own service: no "authorize access" page on the way
        "display": False,  # nothing for people to open in the hub's Services menu
    }
    services = list(_setting(c.JupyterHub, "services", []))
    existing = next((s for s in services if isinstance(s, dict) and s.get("name") == name), None)
    if existing is None:
        services.append(entry)
    else:  # e.g. made by zero-to-jupyterhub from hub.services: completed, its own keys kept
        existing.update({key: value for key, value in entry.items() if key not in existing})
        existing["environment"] = {**entry["environment"], **existing.get("environment", {})}
    c.JupyterHub.services = services

    _grant(c, f"access:services!service={name}")
    _set_server_environment(c, {
        "SPECKLE_AUTH_SERVICE_URL": service_url.rstrip("/") + prefix,
        "SPECKLE_AUTH_SERVICE_PREFIX": prefix,
        "SPECKLE_SERVER": server,
    })
    return redirect_url


def _configure_login(c: Any, server: str, app_id: str, app_secret_env: str, hub_root: str) -> str:
    """The hub logs people in with Speckle. The app's one redirect URL is the hub's own `oauth_callback`, so the
    login service (which would need a redirect URL of its own) is not started: kernels are signed in from the
    hub already, and another account signs in through Speckle's public connector app or a personal access
    token. Users and their servers may read their own `auth_state` (`admin:auth_state!user`): that is how a
    kernel reads its user's current token (SpeckleAuthenticator's token route); the secret stays in the hub."""
    for needed in (app_secret_env, "JUPYTERHUB_CRYPT_KEY"):
        if not os.environ.get(needed):
            _log.warning("The environment variable %s is not set in this hub's environment: logging in with "
                         "Speckle needs it (see the README's JupyterHub section).", needed)
    redirect_url = f"{hub_root}hub/oauth_callback"
    c.JupyterHub.authenticator_class = "speckle_nb_auth.hub.SpeckleAuthenticator"
    c.SpeckleAuthenticator.speckle_server = server
    c.SpeckleAuthenticator.client_id = app_id
    c.SpeckleAuthenticator.client_secret_env = app_secret_env
    c.SpeckleAuthenticator.oauth_callback_url = redirect_url
    c.SpeckleAuthenticator.enable_auth_state = True
    _grant(c, "admin:auth_state!user")
    _set_server_environment(c, {"SPECKLE_SERVER": server, "SPECKLE_HUB_LOGIN": "1"})
    return redirect_url


def _grant(c: Any, scope: str) -> None:
    """`scope` for every user, and for their servers' API tokens (which hold no scope their owner lacks)."""
    roles = list(_setting(c.JupyterHub, "load_roles", []))
    _add_scope(roles, "user", ["self"], scope)
    if isinstance(_setting(c.Spawner, "server_token_scopes", None), list):
        c.Spawner.server_token_scopes = [*c.Spawner.server_token_scopes, scope]
    else:
        _add_scope(roles, "server", list(SERVER_SCOPES), scope)
    c.JupyterHub.load_roles = roles


def _set_server_environment(c: Any, values: dict[str, str]) -> None:
    # the spawner's own section wins over Spawner's in traitlets (zero-to-jupyterhub sets KubeSpawner's)
    sections = {"Spawner"} | {key for key in c if key.endswith("Spawner") and "environment" in c[key]}
    for section in sorted(sections):
        c[section].environment = {**_setting(c[section], "environment", {}), **values}


def _setting(section: Any, key: str, default: Any) -> Any:
    return section[key] if key in section else default


def _add_scope(roles: list[Any], role: str, defaults: list[str], scope: str) -> None:
    entry = next((r for r in roles if isinstance(r, dict) and r.get("name") == role), None)
    if entry is None:
        roles.append({"name": role, "scopes": [*defaults, scope]})
    elif scope not in entry.setdefault("scopes", list(defaults)):
        entry["scopes"] = [*entry["scopes"], scope]
