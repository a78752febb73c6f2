"""The configured Speckle servers, checked once at start-up: pure Python, no Tornado.

A mistake in the configuration never stops Jupyter: each problem becomes a sentence for the log, a server
whose address cannot be used is left out, and a server whose app cannot work is kept for personal access
tokens, with the reason OAuth is off (the login page shows it).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._errors import ConfigurationError, InvalidServerURL
from .._protocol import is_loopback_host, normalize_server_url, typed_server_url

__all__ = ["SERVER_KEYS", "SpeckleServer", "find_server", "read_servers", "redirect_uri_problem"]

SERVER_KEYS = ("url", "name", "app_id", "app_secret", "app_secret_env")
MAX_REDIRECT_URI = 100  # Speckle refuses longer redirect URLs when an app is registered


@dataclass(frozen=True)
class SpeckleServer:
    url: str
    name: str
    app_id: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    problem: str | None = None  # why OAuth is off although an app was configured
    public_app: bool = False  # without a registered app, log in with Speckle's public connector app

    @property
    def oauth(self) -> bool:
        """Logging in with a registered app works here."""
        return bool(self.app_id and self.app_secret and not self.problem)

    @property
    def login_app(self) -> str | None:
        """How "Log in with Speckle" works for this server: "registered", "public", or None (tokens only)."""
        if self.oauth:
            return "registered"
        if self.public_app and not self.problem:
            return "public"
        return None

    def describe_login(self) -> str:
        """How "Log in with Speckle" works here, for a start-up log line."""
        return {"registered": f"{self.url} (a registered app)",
                "public": f"{self.url} (Speckle's public connector app)"}.get(self.login_app or "",
                                                                             f"{self.url} (tokens only)")

    def app_credentials(self) -> tuple[str, str]:
        """The app's id and secret; only for a server with working OAuth."""
        if not self.oauth or self.app_id is None or self.app_secret is None:
            raise ConfigurationError(f"This Jupyter server has no working Speckle app for {self.url}.")
        return self.app_id, self.app_secret

    def public(self) -> dict[str, Any]:
        """What the status route says about this server: never the app's id or secret."""
        return {"url": self.url, "name": self.name, "oauth": self.login_app is not None, "app": self.login_app}


def redirect_uri_problem(uri: str) -> str | None:
    """Why Speckle could not send users back to `uri`, or None."""
    if not uri:
        return "no redirect URI is known (set SpeckleAuthApp.redirect_uri or SPECKLE_REDIRECT_URI)"
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"the redirect URI {uri!r} is not an absolute http(s) URL"
    if "?" in uri or "#" in uri:
        return (
            f"the redirect URI {uri!r} contains '?' or '#': Speckle appends '?access_code=...' to it, which "
            "would make a malformed URL"
        )
    if len(uri) > MAX_REDIRECT_URI:
        return f"the redirect URI is {len(uri)} characters long; Speckle accepts at most {MAX_REDIRECT_URI}"
    return None


def read_servers(
    entries: Iterable[Any],
    *,
    allow_http: bool = False,
    redirect_problem: str | None = None,
    environ: Mapping[str, str] = os.environ,
    public_app: bool = False,
) -> tuple[list[SpeckleServer], list[str]]:
    """The usable servers and the problems found, one sentence each. `redirect_problem` turns OAuth off for
    every server with an app, since all of them send users back to that one URI. An entry's "app_secret_env"
    names the environment variable that holds its secret, which keeps the secret out of Jupyter's
    configuration (Jupyter prints its configuration in its debug log)."""
    servers: list[SpeckleServer] = []
    problems: list[str] = []
    for index, entry in enumerate(entries):
        where = f"SpeckleAuthApp.servers[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where} is not a dict with the keys {list(SERVER_KEYS)}: ignored.")
            continue
        unknown = sorted(str(key) for key in entry if key not in SERVER_KEYS)
        if unknown:
            problems.append(f"{where} has unknown keys {unknown} (known: {list(SERVER_KEYS)}): ignored.")
        try:
            url = normalize_server_url(entry.get("url", ""), allow_http=allow_http)
        except InvalidServerURL as err:
            hint = " (SpeckleAuthApp.allow_http allows plain http)" if "plain http" in err.message else ""
            problems.append(f"{where} is left out: {err.message}{hint}")
            continue
        if any(server.url == url for server in servers):
            problems.append(f"{where} repeats {url}: only the first entry for it is used.")
            continue
        name = entry.get("name") or urlsplit(url).netloc
        app_id = _text(entry.get("app_id"))
        app_secret = _text(entry.get("app_secret"))
        secret_variable = _text(entry.get("app_secret_env"))
        if secret_variable and not app_secret:
            app_secret = _text(environ.get(secret_variable))
        problem = None
        if app_id and not app_secret:
            problem = (
                f"its app's secret is not set (the environment variable {secret_variable} named by "
                "app_secret_env is empty)"
                if secret_variable
                else "its app has an app_id but no app_secret (Speckle requires the secret for every login)"
            )
        elif app_secret and not app_id:
            problem = "its app has an app_secret but no app_id"
        elif app_id and redirect_problem:
            problem = redirect_problem
        if problem:
            problems.append(f"{where} ({url}): OAuth login is off because {problem}.")
        servers.append(SpeckleServer(url, str(name), app_id, app_secret, problem, public_app=public_app))
    return servers, problems


def typed_public_server(typed: str, *, allow_http: bool = False) -> SpeckleServer | None:
    """A server set up nowhere, as typed in the panel, for the public connector app; None for no address."""
    try:
        url = normalize_server_url(typed_server_url(typed), allow_http=allow_http)
    except InvalidServerURL:
        return None
    return SpeckleServer(url, urlsplit(url).netloc, public_app=True)


def same_server(a: str, b: str) -> bool:
    """Two normalised addresses of one server: `localhost`, `127.0.0.1` and `[::1]` are this machine alike."""
    return _loopback_as_one(a) == _loopback_as_one(b)


def _loopback_as_one(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not is_loopback_host(host):
        return url
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme, f"loopback{port}", parts.path, "", ""))


def find_server(
    servers: Iterable[SpeckleServer], url: str, *, allow_http: bool = False
) -> SpeckleServer | None:
    """The configured server `url` names, compared after normalisation (this machine by any of its names);
    None for any other address."""
    try:
        wanted = normalize_server_url(url, allow_http=allow_http)
    except InvalidServerURL:
        return None
    return next((server for server in servers if same_server(server.url, wanted)), None)


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None
