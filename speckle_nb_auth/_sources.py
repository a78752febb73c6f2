"""Signing in without anyone at the keyboard, and what a token's scopes say.

The non-interactive sources, in order: `SPECKLE_TOKEN`/`SPECKLE_SERVER`, the hub's sign-in (in a hub that logs
people in with Speckle: `_hub_login`), the nearest `.env` file's (only when
the environment has no `SPECKLE_TOKEN`: a file never overrides it), a remembered keyring entry for the server,
then a single desktop account matching it. Each candidate is validated by making a `Client`; one that
is refused (revoked token, server down, missing scopes) is skipped and its message kept, so that when nothing
works the error says why the last candidate failed as well as how to sign in.

Scopes: a notebook may ask for scopes; `check_scopes` names what a token lacks and which write scopes it holds
that nobody asked for (a token should be no stronger than the job).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import _credentials as credentials
from ._client import Client
from ._desktop import desktop_accounts
from ._dotenv import read_dotenv, skipped_dotenvs
from ._errors import MissingScope, NotSignedIn, SpeckleAuthError
from ._hub_login import HubRenewal, hub_login_configured, hub_token
from ._protocol import TokenPair, normalize_server_url
from ._scope_probes import probe_scopes

__all__ = [
    "Candidate",
    "ScopeCheck",
    "SignIn",
    "candidates",
    "check_scopes",
    "default_server",
    "hub_client",
    "hub_sign_in",
    "is_write_scope",
    "normalize_scopes",
    "not_signed_in",
    "sign_in",
]

# Scopes that only let a token read, although their name does not end in ":read".
_READ_ONLY = frozenset({"profile:email", "users:email"})
_SCOPE = re.compile(r"^[a-z][a-z-]{0,40}:[a-z][a-z-]{0,40}$")

WAYS_TO_SIGN_IN = (
    "Sign in one of these ways: set SPECKLE_TOKEN (a personal access token) and SPECKLE_SERVER in the "
    "environment; run `python -m speckle_nb_auth login` in a terminal (it signs in with your browser and "
    "remembers it); run speckle_nb_auth.login() in a Jupyter notebook and use its panel; or add an account in "
    "Speckle's desktop manager (a desktop account)."
)


def default_server() -> str:
    """`SPECKLE_SERVER` when set (and usable), else the nearest `.env` file's, else app.speckle.systems."""
    named = os.environ.get("SPECKLE_SERVER")
    if not named:
        found = read_dotenv()
        named = found.server if found else None
    try:
        return normalize_server_url(named or credentials.DEFAULT_SERVER)
    except SpeckleAuthError:
        return credentials.DEFAULT_SERVER


def not_signed_in(server: str | None = None, reason: str | None = None) -> NotSignedIn:
    """The error saying how to sign in; `reason` says why the last try failed."""
    where = f" to {server}" if server else ""
    because = f" The last sign-in tried failed: {reason}" if reason else ""
    return NotSignedIn(f"Not signed in to Speckle{where}.{because} {WAYS_TO_SIGN_IN}", reason=reason)


# --- candidates ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A credential found somewhere, not yet validated. `source` is environment | hub | dotenv | keyring | desktop;
    `path` is the file it came from (the `.env` file), never its content."""

    source: str
    description: str
    server: str
    pair: TokenPair = field(repr=False)
    user_id: str | None = None
    path: Path | None = None


def candidates(server: str | None = None, errors: list[str] | None = None) -> Iterator[Candidate]:
    """The non-interactive credentials for `server` (None: any for the environment, `SPECKLE_SERVER` or
    app.speckle.systems for the keyring), lazily and in order. Problems reading a source go to `errors`."""
    errors = errors if errors is not None else []
    try:
        env = credentials.from_environment(server)
    except SpeckleAuthError as err:
        errors.append(f"SPECKLE_SERVER: {err.message}")
        env = None
    if env is not None:
        yield Candidate("environment", "SPECKLE_TOKEN", env.server, TokenPair(env.token))
    if hub_login_configured():
        try:
            hub = hub_token()
        except SpeckleAuthError as err:
            errors.append(err.message)
        else:
            if server is None or normalize_server_url(server) == hub.server:
                yield Candidate("hub", "your hub login's Speckle account", hub.server, TokenPair(hub.token))
    found = _from_dotenv(server, errors)
    if found is not None:
        yield found
    keyring_server = normalize_server_url(server) if server else default_server()
    for user_id, pair in credentials.recall(keyring_server):
        yield Candidate("keyring", "the remembered sign-in", keyring_server, pair, user_id)
    try:
        accounts = desktop_accounts(server)
    except SpeckleAuthError as err:
        errors.append(err.message)
        accounts = []
    if len(accounts) == 1:
        account = accounts[0]
        yield Candidate("desktop", f"the desktop account {account.label}", account.server_url, account.pair,
                        account.user_id or None)
    elif len(accounts) > 1:
        errors.append(
            f"{len(accounts)} desktop accounts were found: choose one in the login panel, or pass server= "
            "to pick the one of a server."
        )


def _from_dotenv(server: str | None, errors: list[str]) -> Candidate | None:
    """The `.env` file's token, unless the environment sets one. It goes with the file's own `SPECKLE_SERVER`
    when the file names one (the token belongs there), else with the environment's or the default. Where the
    environment's `SPECKLE_SERVER` names another server than the file's, the environment wins, as it does for
    the token: the file's token is not used (and never sent to the environment's server), and that is said."""
    if os.environ.get("SPECKLE_TOKEN", "").strip():
        return None
    errors.extend(skipped_dotenvs())
    found = read_dotenv()
    if found is None or found.token is None:
        return None
    try:
        home = normalize_server_url(found.server or os.environ.get("SPECKLE_SERVER") or credentials.DEFAULT_SERVER)
    except SpeckleAuthError as err:
        errors.append(f"SPECKLE_SERVER in {found.path}: {err.message}")
        return None
    if server is not None and normalize_server_url(server) != home:
        return None
    named = os.environ.get("SPECKLE_SERVER", "").strip()
    if server is None and named and found.server:
        try:
            differs = normalize_server_url(named) != home
        except SpeckleAuthError:
            differs = True
        if differs:
            errors.append(f"{found.path} holds a token for {home}, but SPECKLE_SERVER in the environment names "
                          "another server, and the environment wins: the file's token was not used. Unset "
                          "SPECKLE_SERVER, or remove it from the file.")
            return None
    return Candidate("dotenv", f"the .env file {found.path}", home, TokenPair(found.token), path=found.path)


@dataclass
class SignIn:
    client: Client
    candidate: Candidate
    scopes: ScopeCheck


def hub_client(candidate: Candidate) -> Client:
    """The hub's sign-in: the hub renews it (it alone holds the refresh token and the app secret)."""
    return Client(candidate.server, candidate.pair.token, refresher=HubRenewal())


def hub_sign_in(server: str | None = None) -> Client | None:
    """In a hub that logs people in with Speckle, its user's client (for `server`, when named); else None."""
    if not hub_login_configured():
        return None
    hub = hub_token()
    if server is not None and normalize_server_url(server) != hub.server:
        return None
    return hub_client(Candidate("hub", "your hub login's Speckle account", hub.server, TokenPair(hub.token)))


def _default_client(candidate: Candidate) -> Client:
    if candidate.source == "hub":
        return hub_client(candidate)
    on_refresh: Callable[[TokenPair], None] | None = None
    if candidate.source == "keyring" and candidate.user_id:
        server, user_id = candidate.server, candidate.user_id

        def on_refresh(new: TokenPair) -> None:
            try:
                credentials.remember(server, user_id, new)
            except SpeckleAuthError:
                pass

    client = Client(candidate.server, candidate.pair.token, candidate.pair.refresh_token, on_refresh=on_refresh)
    if candidate.source == "keyring" and candidate.user_id:
        remembered_as = candidate.user_id
        client.on_logout(lambda c: credentials.forget(c.url, remembered_as))
    return client


def sign_in(
    server: str | None = None,
    *,
    scopes: Iterable[str] | None = None,
    make_client: Callable[[Candidate], Client] = _default_client,
    fetch_scopes: bool = False,
) -> SignIn:
    """The first candidate that validates (and holds the requested scopes), or raise `NotSignedIn` naming the
    ways to sign in and the last failure. The token's scopes are looked up when some are requested or
    `fetch_scopes` is true."""
    wanted = normalize_scopes(scopes)
    problems: list[str] = []
    last: str | None = None
    for candidate in candidates(server, problems):
        try:
            client = make_client(candidate)
        except SpeckleAuthError as err:
            last = f"{candidate.description}: {err.message}"
            continue
        check = scope_check(client, wanted) if wanted or fetch_scopes else check_scopes(wanted, None)
        if check.missing:
            client.close()
            last = f"{candidate.description}: {check.missing_message()}"
            continue
        return SignIn(client, candidate, check)
    where = normalize_server_url(server) if server else None
    raise not_signed_in(where, last or (problems[-1] if problems else None))


# --- scopes -------------------------------------------------------------------------------------------------


def is_write_scope(scope: str) -> bool:
    """Anything that is not `*:read`, `profile:email` or `users:email` lets a token change something."""
    return not (scope.endswith(":read") or scope in _READ_ONLY)


def normalize_scopes(scopes: Iterable[str] | str | None) -> tuple[str, ...]:
    """Requested scopes as a tuple without duplicates; a single string is one scope. Raises `ValueError` for
    anything that is not a scope name such as 'streams:read'."""
    if scopes is None:
        return ()
    if isinstance(scopes, str):
        scopes = [scopes]
    found: list[str] = []
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.match(scope.strip()):
            shown = scope[:40] if isinstance(scope, str) else type(scope).__name__
            raise ValueError(f"{shown!r} is not a Speckle scope name: use names such as 'streams:read'.")
        if scope.strip() not in found:
            found.append(scope.strip())
    return tuple(found)


def token_scopes(client: Client) -> list[str] | None:
    """The client's token scopes where they can be known, else None (never raises a Speckle error)."""
    try:
        return client.scopes()
    except SpeckleAuthError:
        return None


def scope_check(client: Client, wanted: tuple[str, ...]) -> ScopeCheck:
    """`check_scopes` for a client: its listed scopes, else a probe of each one wanted."""
    held = token_scopes(client)
    return check_scopes(wanted, held, probe_scopes(client, wanted) if held is None and wanted else None)


@dataclass(frozen=True)
class ScopeCheck:
    """`held` is None when the token's scopes cannot be learned (a personal token without `tokens:read`, an
    app token whose app is unknown): then nothing is reported missing."""

    requested: tuple[str, ...]
    held: tuple[str, ...] | None
    missing: tuple[str, ...]
    unrequested_writes: tuple[str, ...]
    probed: tuple[str, ...] = ()  # requested scopes checked one by one, where `held` is None
    unchecked: tuple[str, ...] = ()  # requested scopes nothing could check

    @property
    def ok(self) -> bool:
        return not self.missing

    def missing_message(self) -> str:
        names, plural = ", ".join(self.missing), "s" if len(self.missing) > 1 else ""
        how = (" (its scopes cannot be listed, so the server was asked under each: it refused)"
               if self.held is None else "")
        return (
            f"This token lacks the scope{plural} this notebook asks for: {names}{how}. "
            "Sign in with a token or app that has them."
        )

    def error(self) -> MissingScope:
        return MissingScope(self.missing_message(), scope=self.missing[0])

    def describe(self) -> str:
        """One line for people: what is missing, or which unrequested write scopes the token holds."""
        if self.missing:
            return self.missing_message()
        if self.held is None and not self.requested:
            return ("Scopes not shown: Speckle lists a token's scopes only for a known app, or for a personal "
                    "access token that may read its own list (tokens:read). Nothing is wrong with the token.")
        if self.held is None:
            said = []
            if self.probed:
                said.append("This token's scopes cannot be listed here, so the server was asked under each: it "
                            f"holds {', '.join(self.probed)}.")
            if self.unchecked:
                lead = "Not" if self.probed else "This token's scopes cannot be listed here, and these were not"
                said.append(f"{lead} checked, since no harmless question shows them: "
                            f"{', '.join(self.unchecked)}. Requests that need them may be refused.")
            return " ".join(said)
        if self.unrequested_writes and self.requested:
            return (
                "This token can also change things the notebook did not ask for: "
                f"{', '.join(self.unrequested_writes)}. A narrower token is safer."
            )
        return ""

    def display(self) -> list[dict[str, object]]:
        """The held scopes for the panel: name, whether it writes, whether it is a write nobody asked for."""
        extra = set(self.unrequested_writes)
        return [{"name": s, "write": is_write_scope(s), "unrequested": s in extra} for s in self.held or ()]


def check_scopes(
    requested: Iterable[str] | None, held: Iterable[str] | None, probed: Mapping[str, bool | None] | None = None
) -> ScopeCheck:
    """What the token lacks of `requested`, from its listed scopes (`held`), else from the answers of
    `_scope_probes` (`probed`): a scope neither can show is unchecked, never passed."""
    wanted = normalize_scopes(requested)
    if held is None:
        answers = probed or {}
        missing = tuple(s for s in wanted if answers.get(s) is False)
        passed = tuple(s for s in wanted if answers.get(s) is True)
        unchecked = tuple(s for s in wanted if answers.get(s) is None)
        return ScopeCheck(wanted, None, missing, (), passed, unchecked)
    have = tuple(dict.fromkeys(str(s) for s in held))
    missing = tuple(s for s in wanted if s not in have)
    extra = tuple(s for s in have if is_write_scope(s) and s not in wanted)
    return ScopeCheck(wanted, have, missing, extra)
