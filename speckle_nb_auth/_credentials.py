"""Where a token comes from and goes, besides a login: the environment and the OS keyring ("remember me").

Keyring layout: one entry per server and user, service `speckle-nb-auth:<server url>`, user name = Speckle user
id, secret = JSON `{"token", "refresh_token"}`. Keyrings cannot list entries, so a second entry of the same
service, user name `_users`, lists the remembered user ids, most recent first.

Where no keyring backend works (headless Linux, many JupyterHub images) the login stays for this session only:
this module never writes a plaintext file on its own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ._errors import SpeckleAuthError
from ._protocol import Secret, TokenPair, mask, normalize_server_url

__all__ = [
    "DEFAULT_SERVER",
    "EnvironmentApp",
    "EnvironmentCredential",
    "app_from_environment",
    "app_id_from_environment",
    "KeyringUnavailable",
    "forget",
    "from_environment",
    "recall",
    "remember",
]

DEFAULT_SERVER = "https://app.speckle.systems"
_SERVICE = "speckle-nb-auth:"
_INDEX = "_users"


class KeyringUnavailable(SpeckleAuthError):
    code = "no_keyring"


_NO_KEYRING = (
    "No working keyring was found on this machine, so this sign-in lasts only for this session. To be "
    "remembered, install a keyring backend (see https://pypi.org/project/keyring/), or set SPECKLE_TOKEN in "
    "the environment."
)


@dataclass(frozen=True)
class EnvironmentCredential:
    server: str
    token: str

    def __repr__(self) -> str:
        return f"EnvironmentCredential(server={self.server!r}, token={mask(self.token)})"


def from_environment(server: str | None = None) -> EnvironmentCredential | None:
    """`SPECKLE_TOKEN` for `SPECKLE_SERVER` (default app.speckle.systems); None when unset or for another
    server than the one asked for."""
    token = Secret(os.environ.get("SPECKLE_TOKEN", "").strip())  # a bad SPECKLE_SERVER below raises
    if not token:
        return None
    env_server = normalize_server_url(os.environ.get("SPECKLE_SERVER") or DEFAULT_SERVER)
    if server is not None and normalize_server_url(server) != env_server:
        return None
    return EnvironmentCredential(env_server, token)


@dataclass(frozen=True)
class EnvironmentApp:
    app_id: str
    app_secret: str = field(repr=False)


def app_id_from_environment(server: str) -> str | None:
    """`SPECKLE_APP_ID`, for the server it belongs to (`SPECKLE_SERVER`, default app.speckle.systems). Not a
    secret: it tells which app's scopes an OAuth token holds."""
    app_id = os.environ.get("SPECKLE_APP_ID", "").strip()
    if not app_id:
        return None
    try:
        home = normalize_server_url(os.environ.get("SPECKLE_SERVER") or DEFAULT_SERVER)
    except SpeckleAuthError:
        return None
    return app_id if home == server else None


def app_from_environment(server: str) -> EnvironmentApp | None:
    """`SPECKLE_APP_ID`/`SPECKLE_APP_SECRET`, but only for the server they belong to: an app's secret is never
    sent to another server, which could collect it."""
    app_id, secret = app_id_from_environment(server), Secret(os.environ.get("SPECKLE_APP_SECRET", "").strip())
    return EnvironmentApp(app_id, secret) if app_id and secret else None


def _keyring():  # type: ignore[no-untyped-def]
    """The keyring module when a usable backend exists, else raise `KeyringUnavailable`."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # noqa: BLE001 - a broken install is one more way of having no keyring
        raise KeyringUnavailable(_NO_KEYRING) from None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 1) <= 0:
        raise KeyringUnavailable(_NO_KEYRING)
    return keyring


def keyring_available() -> bool:
    """Whether a keyring backend that can store secrets is installed (asked before a sign-in that would be
    remembered in it, so nobody signs in only to have the sign-in revoked again)."""
    try:
        _keyring()
    except KeyringUnavailable:
        return False
    return True


def _index(kr, service: str) -> list[str]:  # type: ignore[no-untyped-def]
    raw = kr.get_password(service, _INDEX)
    try:
        users = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [u for u in users if isinstance(u, str)]


def remember(server: str, user_id: str, pair: TokenPair) -> None:
    """Store the pair for this server and user. Raises `KeyringUnavailable` (safe message) when impossible."""
    kr = _keyring()
    service = _SERVICE + server
    try:
        kr.set_password(service, user_id, json.dumps({"token": pair.token, "refresh_token": pair.refresh_token}))
        users = [user_id] + [u for u in _index(kr, service) if u != user_id]
        kr.set_password(service, _INDEX, json.dumps(users))
    except Exception:  # noqa: BLE001 - backends raise their own types (dbus, secretstorage, ...)
        raise KeyringUnavailable(_NO_KEYRING) from None


def recall(server: str) -> list[tuple[str, TokenPair]]:
    """Remembered (user id, pair) for this server, most recent first; empty where no keyring works."""
    try:
        kr = _keyring()
        service = _SERVICE + server
        found = []
        for user_id in _index(kr, service):
            raw = kr.get_password(service, user_id)
            data = json.loads(raw) if raw else None
            if isinstance(data, dict) and isinstance(data.get("token"), str):
                refresh = data.get("refresh_token")
                found.append((user_id, TokenPair(data["token"], refresh if isinstance(refresh, str) else None)))
        return found
    except Exception:  # noqa: BLE001 - an unreadable keyring remembers nothing
        return []


def forget(server: str, user_id: str) -> None:
    """Drop the remembered pair of this server and user, if any; quiet where no keyring works."""
    try:
        kr = _keyring()
        service = _SERVICE + server
        users = _index(kr, service)
        if user_id in users:
            kr.set_password(service, _INDEX, json.dumps([u for u in users if u != user_id]))
        if kr.get_password(service, user_id) is not None:
            kr.delete_password(service, user_id)
    except Exception:  # noqa: BLE001 - nothing to forget where nothing could be stored
        return
