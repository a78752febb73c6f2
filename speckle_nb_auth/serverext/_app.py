"""The Jupyter server extension: its configuration, its routes, and what it starts and stops with the server.

Configure it in `jupyter_server_config.py`:

    c.SpeckleAuthApp.servers = [
        # the app's secret is read from the environment variable SPECKLE_APP_SECRET
        {"url": "https://app.speckle.systems", "name": "Speckle", "app_id": "...", "app_secret_env": "..."},
        {"url": "https://speckle.example.org"},  # no app: personal access tokens only
    ]
    c.SpeckleAuthApp.redirect_uri = "https://hub.example.org/hub/user-redirect/speckle-auth/callback"

or, for one server, with the environment variables SPECKLE_SERVER, SPECKLE_APP_ID, SPECKLE_APP_SECRET and
SPECKLE_REDIRECT_URI (handy in JupyterHub images). A mistake in the configuration is logged as an error at
start-up and turns off only what it concerns; Jupyter itself keeps working.

`python -m speckle_nb_auth.serverext` lists the options with their help texts (`jupyter server --help-all` lists
only Jupyter's own).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import httpx
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Float, Int, List, Unicode, default

from .._credentials import DEFAULT_SERVER
from .._protocol import ChallengeMethod
from .._transport import DEFAULT_TIMEOUT
from .._version import __version__
from ..core._config import SpeckleServer, find_server, read_servers, redirect_uri_problem
from ..core._flows import FlowStore
from ..core._logins import Logins, check_redirect_uris
from ..core._requests import Routes
from ._handlers import PREFIX, routes
from ._relay import Relay, public_prefix_problem, relay_routes

__all__ = ["SpeckleAuthApp"]

# URL parameters Jupyter's access log must hide: the callback's code, and Jupyter's login redirect, which
# carries the whole callback URL (code included) in `next` when the browser has no Jupyter session yet.
SCRUBBED_PARAMS = ("access_code", "next")


class SpeckleAuthApp(ExtensionApp):
    name = "speckle_nb_auth"
    version = __version__
    description = (
        "Sign in to Speckle from Jupyter: the server extension behind the login panel, which runs the "
        '"Log in with Speckle" flow with the app secret kept in this process.'
    )

    # Set once the settings are made: a start that failed before then has nothing to check or close.
    http_client: httpx.AsyncClient | None = None
    relay: Relay | None = None
    _redirect_check: asyncio.Future[Any] | None = None

    # Not List(Dict()): a wrong entry is reported and skipped, instead of failing the whole extension.
    servers: List[Any] = List(
        help="""The Speckle servers users may log in to: dicts with "url", an optional "name", and, for
        "Log in with Speckle", the "app_id" and the secret of an app registered on that server whose
        redirect URL is `redirect_uri`. Give the secret as "app_secret_env", the name of an environment
        variable that holds it ("app_secret", the secret itself, works too, but Jupyter prints its
        configuration in its debug log). A server without an app offers personal access tokens only.
        Defaults to the one server in SPECKLE_SERVER (with SPECKLE_APP_ID and SPECKLE_APP_SECRET), if set.""",
    ).tag(config=True)

    public_app = Bool(
        True,
        help="""Let "Log in with Speckle" work on servers without a registered app, through Speckle's public
        connector app ("sca", the one Speckle's desktop connectors use; its tokens can also write projects
        and invite users). Its sign-in comes back to a loopback address, where this server listens when the
        browser runs on this machine; elsewhere the panel asks for the address the sign-in tab ended on.
        Set False to offer only registered apps and personal access tokens. Without any `servers`, it makes
        app.speckle.systems the one server.""",
    ).tag(config=True)

    default_server = Unicode(
        "",
        help="""The URL of the server the panel offers first; defaults to the first of `servers`.""",
    ).tag(config=True)

    redirect_uri = Unicode(
        help="""The redirect URL registered for the apps, which must lead to <base_url>speckle-auth/callback
        on this server. Defaults to SPECKLE_REDIRECT_URI; under JupyterHub, to
        <hub public URL>hub/user-redirect/speckle-auth/callback; otherwise to this server's own callback
        URL. Speckle accepts at most 100 characters and appends '?access_code=...', so no '?' in it.""",
    ).tag(config=True)

    flow_lifetime = Float(
        600.0,
        help="""Seconds a login may take from its start to its callback (Speckle's access codes live 600).""",
    ).tag(config=True)

    max_flows = Int(
        1000,
        help="""How many logins are kept in memory at most; the oldest is dropped to make room.""",
    ).tag(config=True)

    challenge_method = Unicode(
        "plain",
        help="""The PKCE challenge method: "plain", which Speckle servers implement, or "S256", which
        Speckle's documentation describes.""",
    ).tag(config=True)

    allow_http = Bool(
        False,
        help="""Allow Speckle servers on plain http at addresses other than this machine (tokens then travel
        unencrypted).""",
    ).tag(config=True)

    login_service_url = Unicode(
        help="""On a JupyterHub: the internal URL of the hub's Speckle login service (`python -m
        speckle_nb_auth.hub`, set up by `speckle_nb_auth.hub.configure`), which holds the app secrets. When set,
        this server holds none: the sign-in tab goes to the service, and the exchange, the claim and the refresh
        are forwarded to it with this server's JupyterHub API token. Defaults to SPECKLE_AUTH_SERVICE_URL.""",
    ).tag(config=True)

    login_service_prefix = Unicode(
        help="""Where browsers reach the login service: its public path on the hub (or a URL). Defaults to
        SPECKLE_AUTH_SERVICE_PREFIX, else /services/speckle-auth/.""",
    ).tag(config=True)

    @default("login_service_url")
    def _login_service_url_from_environment(self) -> str:
        return os.environ.get("SPECKLE_AUTH_SERVICE_URL", "").strip()

    @default("login_service_prefix")
    def _login_service_prefix_from_environment(self) -> str:
        return os.environ.get("SPECKLE_AUTH_SERVICE_PREFIX", "").strip() or "/services/speckle-auth/"

    @default("servers")
    def _servers_from_environment(self) -> list[dict[str, Any]]:
        url = os.environ.get("SPECKLE_SERVER", "").strip()
        if not url:
            return []
        entry = {"url": url}
        for key, variable in (("app_id", "SPECKLE_APP_ID"), ("app_secret", "SPECKLE_APP_SECRET")):
            if os.environ.get(variable):
                entry[key] = os.environ[variable]
        return [entry]

    @default("redirect_uri")
    def _redirect_uri_from_environment(self) -> str:
        if os.environ.get("SPECKLE_REDIRECT_URI"):
            return os.environ["SPECKLE_REDIRECT_URI"].strip()
        # JupyterHub (4.1+) tells a single-user server its hub's public URL, e.g. https://hub.example.org/hub/
        hub = os.environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "").strip()
        if hub:
            return url_path_join(hub, "user-redirect", PREFIX, "callback")
        return ""  # this server's own callback URL, known once the server has its port: see `callback_uri`

    def callback_uri(self) -> str:
        """The redirect URI this server expects the apps to have registered."""
        if self.redirect_uri:
            return self.redirect_uri
        assert self.serverapp is not None
        return url_path_join(self.serverapp.connection_url, PREFIX, "callback")

    def initialize_settings(self) -> None:
        assert self.serverapp is not None
        self._scrub_log_params()
        problems: list[str] = []
        method: ChallengeMethod = "S256" if self.challenge_method == "S256" else "plain"
        if self.challenge_method not in ("plain", "S256"):
            problems.append(
                f"SpeckleAuthApp.challenge_method {self.challenge_method!r} is neither 'plain' nor 'S256': "
                "using 'plain'."
            )
        lifetime = self.flow_lifetime
        if lifetime <= 0:
            problems.append(f"SpeckleAuthApp.flow_lifetime must be positive, not {lifetime}: using 600.")
            lifetime = 600.0
        redirect_problem = redirect_uri_problem(self.callback_uri())
        entries = self.servers or ([{"url": DEFAULT_SERVER, "name": "Speckle"}] if self.public_app else [])
        servers, server_problems = read_servers(
            entries, allow_http=self.allow_http, redirect_problem=redirect_problem, public_app=self.public_app
        )
        problems += server_problems
        self._warn_about_secret_on_hub()
        self._hide_secrets_from_kernels()
        default_server = self._default_server(servers, problems)
        http_client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        relay = self._make_relay(http_client, problems)
        for problem in problems:
            self.log.error("Speckle login configuration: %s", problem)
        for warning in self._secrets_in_debug_log():
            self.log.warning("Speckle login configuration: %s", warning)
        self.logins = Logins(
            servers,
            default_server,
            FlowStore(lifetime=lifetime, max_flows=max(1, self.max_flows)),
            http_client,
            challenge_method=method,
            allow_http=self.allow_http,
            any_public_server=self.public_app and relay is None,
            log=self.log,
        )
        self.routes = Routes(self.logins, self.log)
        self.http_client = http_client
        self.relay = relay
        if relay is not None:
            self.log.info("Speckle login: through the hub's login service at %s", relay.service_url)
            return
        self.log.info("Speckle login: %d server(s): %s", len(servers),
                      ", ".join(server.describe_login() for server in servers))

    def _make_relay(self, client: httpx.AsyncClient, problems: list[str]) -> Relay | None:
        if not self.login_service_url:
            return None
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "").strip()
        problem = public_prefix_problem(self.login_service_prefix)
        if not token:
            problem = "this server has no JUPYTERHUB_API_TOKEN to authenticate to it with (is it run by JupyterHub?)"
        if problem:
            problems.append(f"the Speckle login service at {self.login_service_url} is not used: {problem}.")
            return None
        return Relay(self.login_service_url, self.login_service_prefix, token, client)

    def _warn_about_secret_on_hub(self) -> None:
        """Under JupyterHub every user's code runs as the Unix user of their server, and reads the environment
        it started with (/proc/<pid>/environ) whatever is later removed from os.environ."""
        if not os.environ.get("JUPYTERHUB_API_TOKEN"):
            return
        named = [name for name in self._secret_variables() if os.environ.get(name)]
        configured = self.config.get("SpeckleAuthApp", {}).get("servers") or []
        written = any(isinstance(entry, dict) and entry.get("app_secret") for entry in configured)
        if not named and not written:
            return
        where = f"in its environment ({', '.join(sorted(named))})" if named else "in its configuration"
        self.log.warning(
            "Speckle login: this Jupyter server runs under JupyterHub with a Speckle app secret %s, and every "
            "user who can run code here can read it (the server's original environment stays readable in "
            "/proc). Keep the secret in the hub's Speckle login service instead: "
            "speckle_nb_auth.hub.configure(c, ...) in jupyterhub_config.py.", where,
        )

    def _secret_variables(self) -> set[str]:
        return {"SPECKLE_APP_SECRET"} | {
            entry["app_secret_env"] for entry in self.servers
            if isinstance(entry, dict) and isinstance(entry.get("app_secret_env"), str)
        }

    def _hide_secrets_from_kernels(self) -> None:
        """Kernels inherit this process's environment: once read, app secrets leave it, so only this process
        holds them (a `%env` in a notebook would otherwise print them into its outputs)."""
        for name in self._secret_variables():
            os.environ.pop(name, None)

    def _secrets_in_debug_log(self) -> list[str]:
        """Jupyter logs its whole configuration at DEBUG ("Config changed: ..."), before any extension
        loads: an app secret written into `servers` is in that line. Say so, and how to avoid it, when that
        log is on."""
        assert self.serverapp is not None
        if min(self.serverapp.log.getEffectiveLevel(), self.log.getEffectiveLevel()) > logging.DEBUG:
            return []
        configured = self.config.get("SpeckleAuthApp", {}).get("servers") or []
        return [
            f"the app secret for {entry.get('url')!r} is written in SpeckleAuthApp.servers, and Jupyter "
            'prints its configuration in its debug log: give it in "app_secret_env" (the name of an '
            "environment variable that holds it) instead."
            for entry in configured
            if isinstance(entry, dict) and entry.get("app_secret")
        ]

    def _scrub_log_params(self) -> None:
        assert self.serverapp is not None
        keys = list(self.serverapp.extra_log_scrub_param_keys)
        keys += [key for key in SCRUBBED_PARAMS if key not in keys]
        self.serverapp.extra_log_scrub_param_keys = keys
        # the web app copied the list when it was created; the extension's settings are merged into it next
        self.settings["extra_log_scrub_param_keys"] = keys

    def _default_server(self, servers: list[SpeckleServer], problems: list[str]) -> SpeckleServer | None:
        if not self.default_server:
            return servers[0] if servers else None
        server = find_server(servers, self.default_server, allow_http=self.allow_http)
        if server is None:
            problems.append(
                f"SpeckleAuthApp.default_server {self.default_server!r} is not one of the usable servers: "
                "using the first one."
            )
            return servers[0] if servers else None
        return server

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes() if self.relay is None else relay_routes(routes()))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.http_client is None or self.relay is not None:
            return  # its configuration failed, which Jupyter has logged; or the hub's service holds the apps
        # in the background: start-up never waits for a Speckle server, and the check never raises
        self._redirect_check = asyncio.ensure_future(asyncio.gather(
            check_redirect_uris(self.http_client, self.logins.servers, self.callback_uri(), self.log),
            self.logins.learn_public_scopes(),
        ))

    async def stop_extension(self) -> None:
        # Never raises: Jupyter stops its event loop only after every extension has stopped, so an error here
        # would leave the server running and deaf to SIGTERM.
        if self._redirect_check is not None:
            self._redirect_check.cancel()
        logins = getattr(self, "logins", None)
        if logins is not None:
            logins.close_receivers()
        if self.http_client is not None:
            await self.http_client.aclose()
