"""What the emulated server knows: users, tokens, refresh tokens, apps, access codes, browser sessions and
a clock.

Pure Python, no Tornado and no GraphQL: the HTTP handlers (`_app`) and the resolvers (`_schema`) call it.
Every rule follows `speckle-protocol.md`; where that page is silent, the real server decided (a token's
lifespan counts from its creation, and a token past it is deleted when it is refused; logout and revocation
find a token by its 10-character id alone; an app's scopes are listed in the order of the scope table).
Tornado's thread and the test thread share one `State`, so whatever touches its tables takes the lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ALL_SCOPES",
    "CODE_LIFESPAN",
    "CONNECTOR_APP_ID",
    "DEFAULT_CONNECTOR_REDIRECT_URL",
    "DEFAULT_REDIRECT_URL",
    "PAT_SCOPES",
    "REFRESH_LIFESPAN",
    "SEED_EMAILS",
    "TOKEN_LIFESPAN_MS",
    "App",
    "ChallengeMethod",
    "Grant",
    "Project",
    "Rejected",
    "State",
    "Token",
    "TokenCreateError",
    "User",
    "in_server_order",
    "missing_scope_message",
    "new_password",
]

ChallengeMethod = Literal["plain", "S256"]

DEFAULT_REDIRECT_URL = "http://127.0.0.1:8888/speckle-auth/callback"
DEFAULT_CONNECTOR_REDIRECT_URL = "http://localhost:29363"  # where Speckle's desktop connectors listen
CONNECTOR_APP_ID = "sca"

# Every scope a Speckle server knows, with the text its consent page shows.
ALL_SCOPES: dict[str, str] = {
    "streams:read": "Read your projects and the models in them.",
    "streams:write": "Create and change projects and models on your behalf.",
    "profile:read": "Read your profile: name, company, avatar.",
    "profile:write": "Change your profile.",
    "profile:email": "Read your email address.",
    "profile:delete": "Delete your account.",
    "users:read": "Read other users' profiles.",
    "users:email": "Read other users' email addresses.",
    "users:invite": "Invite people to this server.",
    "server:stats": "Read the server's statistics.",
    "server:setup": "Change the server's settings.",
    "tokens:read": "List your access tokens.",
    "tokens:write": "Create and revoke access tokens on your behalf.",
    "apps:read": "List the apps you authorized or created.",
    "apps:write": "Create apps and revoke their access.",
    "workspace:create": "Create workspaces.",
    "workspace:read": "Read your workspaces.",
    "workspace:update": "Change your workspaces.",
    "workspace:delete": "Delete your workspaces.",
    "workspace:billing": "Manage your workspaces' billing.",
    "automate:report-results": "Report results of automations.",
    "automate-functions:read": "Read automate functions.",
    "automate-functions:write": "Create and change automate functions.",
}
PAT_SCOPES = ("profile:read", "profile:email", "streams:read", "users:read")
CONNECTOR_SCOPES = ("streams:read", "streams:write", "profile:read", "profile:email", "users:read", "users:invite")

CODE_LIFESPAN = 600.0  # seconds: access codes live 10 minutes
REFRESH_LIFESPAN = 1.577e10 / 1000  # seconds: the server's 1.577e10 ms, about six months
TOKEN_LIFESPAN_MS = 3_154_000_000_000  # ~100 years: the default for personal and app tokens


def missing_scope_message(scope: str) -> str:
    return f"Your auth token does not have the required scope: {scope}."


class Rejected(Exception):
    """The server refuses a request; `str(err)` is the server's exact error text."""


class TokenCreateError(Rejected):
    """`apiTokenCreate` refused the requested scopes (GraphQL code TOKEN_CREATE_ERROR)."""


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    description: str
    created_at: float


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    password: str = field(repr=False)
    company: str
    bio: str
    role: str
    created_at: float
    projects: tuple[Project, ...]


@dataclass
class Token:
    id: str
    secret: str
    user_id: str
    name: str
    scopes: tuple[str, ...]
    kind: Literal["pat", "app", "web"]
    app_id: str | None
    created_at: float
    last_used: float
    lifespan_ms: int = TOKEN_LIFESPAN_MS

    @property
    def value(self) -> str:
        return self.id + self.secret

    def __repr__(self) -> str:  # the secret never shows
        return f"Token(id={self.id!r}, kind={self.kind!r}, user_id={self.user_id!r})"


@dataclass(frozen=True)
class RefreshToken:
    id: str
    secret: str
    app_id: str
    user_id: str
    created_at: float

    def __repr__(self) -> str:
        return f"RefreshToken(id={self.id!r}, app_id={self.app_id!r})"


@dataclass
class App:
    """`public`: one of the server's built-in apps, whose secret is its id; they have no author."""

    id: str
    secret: str = field(repr=False)
    name: str
    description: str
    redirect_url: str
    scopes: tuple[str, ...]
    trusted: bool
    author_id: str | None
    created_at: float
    public: bool = False


@dataclass(frozen=True)
class AccessCode:
    app_id: str
    user_id: str
    challenge: str = field(repr=False)  # under "plain" it is the verifier itself
    created_at: float


@dataclass(frozen=True)
class Grant:
    """A token pair issued by `POST /auth/token`; `refreshed` when it came from a refresh token."""

    token: str
    refresh_token: str
    refreshed: bool

    def __repr__(self) -> str:
        return f"Grant(refreshed={self.refreshed})"


_SEED_USERS = (
    ("Ada Lovelace", "ada@example.com", "Analytical Engines Ltd", "Wrote the first program.",
     "server:admin", ("Difference Engine", "Bernoulli Numbers", "Notes on the Engine")),
    ("Grace Hopper", "grace@example.com", "US Navy", "Found the first bug.",
     "server:user", ("Harvard Mark I", "COBOL Compiler")),
    # another email domain: the one a hub's allowed_domains leaves out in the tests
    ("Alan Turing", "alan@example.org", "Bletchley Park", "Broke the Enigma.", "server:user", ("Bombe",)),
)
SEED_EMAILS = tuple(seed[1] for seed in _SEED_USERS)


def new_password() -> str:
    """Easy to type from a projector, and new every run: `3f9a-07c2-b81d`."""
    return "-".join(secrets.token_hex(2) for _ in range(3))


def in_server_order(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes as the server lists an app's: in the order of its scope table, each once."""
    wanted = set(scopes)
    return tuple(scope for scope in ALL_SCOPES if scope in wanted)


def _hex(length: int) -> str:
    return secrets.token_hex(length // 2)


def _same(stored: str, given: str) -> bool:
    return hmac.compare_digest(stored.encode("utf-8"), given.encode("utf-8"))


def _field(body: Mapping[str, Any], name: str) -> str:
    """A request field as text; absent, null and empty all read as "" (the server tests them as falsy)."""
    value = body.get(name)
    if value is None or value is False:
        return ""
    return value if isinstance(value, str) else str(value)


def _insufficient(what: str) -> Rejected:
    return Rejected(f"Invalid request, insufficient information provided. {what} is required.")


class State:
    def __init__(
        self,
        *,
        redirect_url: str = DEFAULT_REDIRECT_URL,
        connector_redirect_url: str = DEFAULT_CONNECTOR_REDIRECT_URL,
        challenge_method: ChallengeMethod = "plain",
        trusted: bool = False,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        if challenge_method not in ("plain", "S256"):
            raise ValueError(f"unknown challenge method {challenge_method!r}: use 'plain' or 'S256'")
        passwords = dict(passwords or {})
        unknown = sorted(set(passwords) - set(SEED_EMAILS))
        if unknown or not all(passwords.values()):
            raise ValueError(f"passwords are for the seeded users ({', '.join(SEED_EMAILS)}), and not empty")
        self._lock = threading.RLock()
        self._offset = 0.0
        self.challenge_method: ChallengeMethod = challenge_method
        self._users: dict[str, User] = {}
        self._tokens: dict[str, Token] = {}  # by the token's 10-character id
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._apps: dict[str, App] = {}
        self._codes: dict[str, AccessCode] = {}
        self._sessions: dict[str, str] = {}  # browser session cookie -> that browser's web token
        self._seeded: list[dict[str, str]] = []
        for name, email, company, bio, role, projects in _SEED_USERS:
            password = passwords.get(email) or new_password()
            now = self.now()
            demo = tuple(Project(_hex(10), title, f"A demo project of {name}.", now) for title in projects)
            user = User(
                id=_hex(10), name=name, email=email, password=password, company=company, bio=bio, role=role,
                created_at=now, projects=demo,
            )
            self._users[user.id] = user
            pat = self._new_token(user.id, "Notebook token", PAT_SCOPES, "pat", None)
            session = self._new_token(user.id, "Web session", tuple(ALL_SCOPES), "web", None)
            self._seeded.append(
                {"id": user.id, "name": name, "email": email, "password": password, "pat": pat.value,
                 "session_token": session.value}
            )
        self._seed_public_apps(connector_redirect_url)
        self.seed_app = self.create_app("Speckle notebook login", redirect_url, PAT_SCOPES, trusted=trusted)

    def _seed_public_apps(self, connector_redirect_url: str) -> None:
        """The apps every Speckle server creates at start-up (`defaultApps.ts`): secret = id, public, trusted.
        The web apps' redirect URLs are the server's own origin, set by `set_origin` once the port is known."""
        everything = tuple(ALL_SCOPES)
        for app_id, name, description, redirect_url, scopes in (
            ("spklwebapp", "Speckle Web Manager",
             "The Speckle Web Manager is your one-stop place to manage and coordinate your data.", "", everything),
            ("explorer", "Speckle Explorer", "GraphiQL Playground with authentication.", "", everything),
            (CONNECTOR_APP_ID, "Speckle Connector", "A Speckle Desktop Connectors.", connector_redirect_url,
             CONNECTOR_SCOPES),
        ):
            self._apps[app_id] = App(
                id=app_id, secret=app_id, name=name, description=description, redirect_url=redirect_url,
                scopes=in_server_order(scopes), trusted=True, author_id=None, created_at=self.now(), public=True,
            )

    def set_origin(self, url: str) -> None:
        """The server's own address, which the web frontend's apps redirect to."""
        with self._lock:
            self._apps["spklwebapp"].redirect_url = url
            self._apps["explorer"].redirect_url = f"{url}/explorer"

    # --- the clock ------------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._offset

    def advance_clock(self, seconds: float) -> None:
        with self._lock:
            self._offset += float(seconds)

    # --- what the in-process API and the CLI hand out -------------------------------------------------------

    def credentials(self, url: str) -> dict[str, Any]:
        with self._lock:
            first = self._seeded[0]
            return {
                "url": url,
                "pat": first["pat"],
                "session_token": first["session_token"],
                "app_id": self.seed_app.id,
                "app_secret": self.seed_app.secret,
                "redirect_url": self.seed_app.redirect_url,
                "connector_redirect_url": self._apps[CONNECTOR_APP_ID].redirect_url,
                "users": [dict(user) for user in self._seeded],
            }

    def create_app(
        self, name: str, redirect_url: str, scopes: Iterable[str], *, trusted: bool = False
    ) -> App:
        requested = tuple(scopes)
        unknown = sorted(set(requested) - set(ALL_SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        with self._lock:
            app = App(
                id=_hex(10), secret=_hex(10), name=name, description=f"{name} (registered on the emulator)",
                redirect_url=redirect_url, scopes=in_server_order(requested), trusted=trusted,
                author_id=next(iter(self._users)), created_at=self.now(),
            )
            self._apps[app.id] = app
            return app

    def set_redirect_url(self, url: str, app_id: str | None = None) -> None:
        with self._lock:
            app = self._apps.get(app_id or self.seed_app.id)
            if app is None:
                raise KeyError(f"no app {app_id!r} on this emulator")
            app.redirect_url = url

    # --- lookups --------------------------------------------------------------------------------------------

    def app(self, app_id: str) -> App | None:
        with self._lock:
            return self._apps.get(app_id)

    def apps(self) -> list[App]:
        with self._lock:
            return list(self._apps.values())

    def issued_secrets(self) -> list[str]:
        """Every secret handed out and still known: tokens, refresh tokens, app secrets, unused access codes.
        The built-in apps' secrets are public (each is its app's id), so they are not among them."""
        with self._lock:
            return (
                [token.value for token in self._tokens.values()]
                + [refresh.id + refresh.secret for refresh in self._refresh_tokens.values()]
                + [app.secret for app in self._apps.values() if not app.public]
                + list(self._codes)
            )

    def user(self, user_id: str) -> User:
        with self._lock:
            return self._users[user_id]

    def emails(self) -> list[str]:
        with self._lock:
            return [user.email for user in self._users.values()]

    def personal_tokens(self, user_id: str) -> list[Token]:
        with self._lock:
            return [t for t in self._tokens.values() if t.user_id == user_id and t.kind == "pat"]

    def authenticate(self, value: str) -> Token | None:
        """The token `value` names, or None when the server refuses it (unknown, revoked, expired).
        Like the server, only the 32 characters after the id count as the secret."""
        with self._lock:
            token = self._tokens.get(value[:10])
            if token is None or not _same(token.secret, value[10:42]):
                return None
            now = self.now()
            if (now - token.created_at) * 1000 > token.lifespan_ms:  # counted from creation, as the server does
                del self._tokens[token.id]
                return None
            token.last_used = now
            return token

    # --- the app flow ---------------------------------------------------------------------------------------

    def grant_code(self, app_id: str | None, challenge: str | None, user_token: str | None) -> str:
        """`GET /auth/accesscode`: the URL the browser goes to next. Each call makes a new code, also for a
        challenge that already has one; the URL is glued together literally, as the server does."""
        with self._lock:
            if not app_id:
                raise Rejected("appId missing from querystring.")
            app = self._apps.get(app_id)
            if app is None:
                raise Rejected("App does not exist.")
            if not challenge:
                raise Rejected("Missing challenge")
            if not user_token:
                raise Rejected("Missing token")
            token = self.authenticate(user_token)
            if token is None:
                raise Rejected("Invalid token")
            if "tokens:write" not in token.scopes:
                raise Rejected(missing_scope_message("tokens:write"))
            code = _hex(42)
            self._codes[code] = AccessCode(app.id, token.user_id, challenge, self.now())
            return f"{app.redirect_url}?access_code={code}"

    def token_request(self, body: Mapping[str, Any]) -> Grant:
        """`POST /auth/token`: an access code exchange, or a refresh when the body has `refreshToken`."""
        app_id, app_secret = _field(body, "appId"), _field(body, "appSecret")
        if not app_id:
            raise _insufficient("App Id")
        if not app_secret:
            raise _insufficient("App Secret")
        if "refreshToken" in body:
            refresh_token = _field(body, "refreshToken")
            if not refresh_token:
                raise Rejected(
                    "Invalid request, insufficient information provided. A valid refresh token is required."
                )
            return self._refresh(app_id, app_secret, refresh_token)
        access_code, challenge = _field(body, "accessCode"), _field(body, "challenge")
        if not access_code:
            raise _insufficient("Access Code")
        if not challenge:
            raise _insufficient("Challenge")
        return self._exchange(app_id, app_secret, access_code, challenge)

    def _exchange(self, app_id: str, app_secret: str, access_code: str, challenge: str) -> Grant:
        with self._lock:
            code = self._codes.get(access_code)
            if code is None:
                raise Rejected("Access code not found.")
            if code.app_id != app_id:
                raise Rejected("Invalid request: application id does not match.")
            # Deleted here, before the remaining checks: a wrong challenge or secret burns the code.
            del self._codes[access_code]
            if self.now() - code.created_at > CODE_LIFESPAN:
                raise Rejected("Access code expired")
            if not self._challenge_matches(code.challenge, challenge):
                raise Rejected(
                    "Code challenge mismatch. Ensure the same challenge is used for authentication and token "
                    "exchange."
                )
            app = self._apps[app_id]  # a code exists only for an existing app
            if not _same(app.secret, app_secret):
                raise Rejected("Invalid app secret. Ensure the app secret is correct.")
            return self._issue(app, code.user_id, refreshed=False)

    def _challenge_matches(self, stored: str, given: str) -> bool:
        if self.challenge_method == "S256":  # Speckle's docs: `given` is the verifier, hashed here
            digest = hashlib.sha256(given.encode("utf-8")).digest()
            given = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return _same(stored, given)

    def _refresh(self, app_id: str, app_secret: str, value: str) -> Grant:
        with self._lock:
            stored = self._refresh_tokens.get(value[:10])
            if stored is None or stored.app_id != app_id:
                raise Rejected("Invalid request")
            if self.now() - stored.created_at > REFRESH_LIFESPAN:
                del self._refresh_tokens[stored.id]
                raise Rejected("Refresh token expired")
            if not _same(stored.secret, value[10:42]):
                raise Rejected("Invalid token")
            if not _same(self._apps[app_id].secret, app_secret):
                raise Rejected("Invalid request")
            # The old pair stays valid: the server does not retire it.
            return self._issue(self._apps[app_id], stored.user_id, refreshed=True)

    def _issue(self, app: App, user_id: str, *, refreshed: bool) -> Grant:
        token = self._new_token(user_id, f"{app.name}-token", app.scopes, "app", app.id)
        refresh = RefreshToken(_hex(10), _hex(32), app.id, user_id, self.now())
        self._refresh_tokens[refresh.id] = refresh
        return Grant(token.value, refresh.id + refresh.secret, refreshed)

    def _new_token(
        self,
        user_id: str,
        name: str,
        scopes: Iterable[str],
        kind: Literal["pat", "app", "web"],
        app_id: str | None,
        lifespan_ms: int = TOKEN_LIFESPAN_MS,
    ) -> Token:
        now = self.now()
        token = Token(_hex(10), _hex(32), user_id, name, tuple(scopes), kind, app_id, now, now, lifespan_ms)
        self._tokens[token.id] = token
        return token

    # --- ending access --------------------------------------------------------------------------------------

    def logout(self, body: Mapping[str, Any]) -> None:
        """`POST /auth/logout`: needs no authentication; the server finds both by their ids alone."""
        token, refresh_token = _field(body, "token"), _field(body, "refreshToken")
        with self._lock:
            if not token or self._tokens.pop(token[:10], None) is None:
                raise Rejected("Something went wrong while trying to logout.")
            if refresh_token:
                self._refresh_tokens.pop(refresh_token[:10], None)

    def create_personal_token(
        self, owner: Token, name: str, scopes: list[str], lifespan_ms: int | None
    ) -> str:
        """`apiTokenCreate`: a PAT never holds tokens:write, nor a scope its creator's token lacks."""
        if "tokens:write" in scopes:
            raise TokenCreateError("You can't create a personal access token with the tokens:write scope")
        if not set(scopes) <= set(owner.scopes):
            raise TokenCreateError("You can't create a token with scopes that you don't have")
        with self._lock:
            valid = [scope for scope in scopes if scope in ALL_SCOPES]
            lifespan = lifespan_ms or TOKEN_LIFESPAN_MS
            return self._new_token(owner.user_id, name, valid, "pat", None, lifespan).value

    def revoke_token(self, user_id: str, value: str) -> None:
        """`apiTokenRevoke`: takes a token, its id, or "Bearer <token>"; only the user's own."""
        token_id = value.split(" ")[-1][:10] if "bearer" in value.lower() else value[:10]
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.user_id != user_id:
                raise Rejected("Did not revoke token")
            del self._tokens[token_id]

    def revoke_app_access(self, user_id: str, app_id: str) -> None:
        """`appRevokeAccess`: all of the user's tokens and refresh tokens for that app."""
        with self._lock:
            for token in list(self._tokens.values()):
                if (token.user_id, token.app_id) == (user_id, app_id):
                    del self._tokens[token.id]
            for refresh in list(self._refresh_tokens.values()):
                if (refresh.user_id, refresh.app_id) == (user_id, app_id):
                    del self._refresh_tokens[refresh.id]

    # --- the web frontend's sign-in -------------------------------------------------------------------------

    def sign_in(self, email: str, password: str) -> str | None:
        """A new browser session (the cookie's value) with a fresh web token; None for wrong credentials."""
        with self._lock:
            user = next((u for u in self._users.values() if u.email.lower() == email.strip().lower()), None)
            if user is None or not _same(user.password, password):
                return None
            web = self._new_token(user.id, "Web session", tuple(ALL_SCOPES), "web", None)
            session = secrets.token_urlsafe(32)
            self._sessions[session] = web.value
            return session

    def sign_out(self, session: str | None) -> None:
        """The browser's session ends: its web token is no longer good, and the cookie names nothing."""
        with self._lock:
            value = self._sessions.pop(session or "", None)
            if value:
                self._tokens.pop(value[:10], None)

    def session_token(self, session: str | None) -> Token | None:
        """The web token of a signed-in browser, or None (no session, or its token was logged out)."""
        with self._lock:
            value = self._sessions.get(session or "")
            return self.authenticate(value) if value else None
