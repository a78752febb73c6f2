"""The object a notebook user gets: an authenticated Speckle client that knows who it is signed in as.

Every secret here is a `Secret` (the token pair's fields, the app secret) before any line that can raise, so
a verbose traceback (IPython's `%xmode Verbose`) shows none of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from . import _protocol as protocol
from ._auth import Refresher, SpeckleAuth
from ._credentials import app_from_environment
from ._errors import (
    LogoutFailed,
    MissingScope,
    NotSignedIn,
    SpeckleAuthError,
    SpeckleServerError,
    SsoSessionExpired,
)
from ._protocol import Reply, Secret, ServerInfo, TokenPair, UserInfo, mask
from ._transport import DEFAULT_TIMEOUT, call, ssl_context, unreachable

__all__ = ["Client", "direct_refresher"]

_STILL_VALID = "query SpeckleNbAuthCheck { activeUser { id } }"
_log = logging.getLogger("speckle_nb_auth.client")


def direct_refresher(http: httpx.Client, server: str, app_id: str, app_secret: str) -> Refresher:
    """Refresh straight with Speckle; only possible where the app's credentials are at hand."""
    app_secret = Secret(app_secret)  # what the closure below keeps, and a traceback of it shows

    def refresh(pair: TokenPair) -> TokenPair:
        assert pair.refresh_token is not None
        return call(http, protocol.refresh(server, app_id, app_secret, pair.refresh_token))

    return refresh


class Client:
    """A signed-in Speckle client. Making one validates the token (`activeUser`, `serverInfo`) and raises a
    typed error (`InvalidToken`, `SpeckleUnreachable`, ...) whose message says what to do.

    `refresher` renews an expired token (the login panel passes one that asks the Jupyter server); without
    one, `SPECKLE_APP_ID`/`SPECKLE_APP_SECRET` in the environment allow a direct refresh, for the server they
    belong to (`SPECKLE_SERVER`) only. `on_refresh` is told of each new pair so whoever stored the old one can
    replace it. `app_id` names the app whose sign-in made the token (None for a personal access token, or
    when unknown): it is how `scopes()` knows an app token's scopes.
    """

    def __init__(
        self,
        server: str,
        token: str,
        refresh_token: str | None = None,
        *,
        refresher: Refresher | None = None,
        on_refresh: Callable[[TokenPair], None] | None = None,
        app_id: str | None = None,
        allow_http: bool = False,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise NotSignedIn("No token was given: paste a personal access token or log in with Speckle.")
        token = Secret(token.strip())  # this frame's values show in a verbose traceback of a failed check
        refresh_token = Secret(refresh_token) if refresh_token else None
        self._url = protocol.normalize_server_url(server, allow_http=allow_http)
        home_app = app_from_environment(self._url)
        # Only the sign-in that made the token knows its app: SPECKLE_APP_ID names an app this Jupyter can use,
        # not the app of whatever token it was handed.
        self._app_id = (app_id or "").strip() or None
        self.probed_scopes: dict[str, bool | None] = {}  # where the scopes cannot be listed (`_scope_probes`)
        # A sign-in made this token (an app's pair), rather than the person bringing it: `logout()` revokes it.
        self.made_here = refresh_token is not None
        self._on_sso_expired: list[Callable[[SsoSessionExpired], None]] = []
        self._plain = httpx.Client(timeout=timeout, verify=ssl_context())
        if refresher is None and home_app is not None:
            refresher = direct_refresher(self._plain, self._url, home_app.app_id, home_app.app_secret)
        self._on_refresh = on_refresh
        self._auth = SpeckleAuth(
            TokenPair(token, refresh_token), refresher, self._stored, origin=self._url
        )
        self._http = httpx.Client(base_url=self._url, auth=self._auth, timeout=timeout, verify=ssl_context())
        self._forget: list[Callable[[Client], None]] = []
        self._closed = False
        self._calls = 0  # requests on their way: `close` lets them finish before it closes the transports
        self._calls_lock = threading.Lock()
        try:
            data = self.graphql(protocol.WHOAMI_QUERY)
            who = protocol.parse_whoami(self._url, data)
        except BaseException:
            self.close()
            raise
        self.user: UserInfo = who.user
        self.server: ServerInfo = who.server

    # --- what the user calls ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def http(self) -> httpx.Client:
        """The underlying `httpx.Client`: based at the server URL, authenticated, refreshing on its own."""
        self._check_open()
        return self._http

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run a GraphQL query or mutation and return its `data`; errors raise (`MissingScope` names the
        scope the token lacks, `SsoSessionExpired` the workspace whose SSO sign-in lapsed)."""
        body: dict[str, Any] = {"query": query}
        if variables:
            body["variables"] = dict(variables)
        with self._in_call():
            try:
                response = self._http.post("/graphql", json=body)
            except httpx.RequestError as err:
                raise unreachable(self._url, err) from None
        try:
            return protocol.parse_graphql(self._url, Reply(response.status_code, response.content))
        except SsoSessionExpired as err:
            for tell in self._on_sso_expired:  # the login panel shows the address that renews it
                tell(err)
            raise

    def on_sso_expired(self, tell: Callable[[SsoSessionExpired], None]) -> None:
        self._on_sso_expired.append(tell)

    def scopes(self) -> list[str] | None:
        """The token's scopes, as the server tells them: a personal access token's from the user's token list
        (where the token may read it: `tokens:read`), an app token's from its app (the one whose sign-in made
        it). None when the server cannot tell: the scopes are unknown, and no check should pass on them."""
        with self._in_call():
            token = self._auth.pair.token
            try:
                found = call(self._plain, protocol.token_scopes(self._url, token))
            except MissingScope:
                found = None
            if found is None and self._app_id:
                app = call(self._plain, protocol.app_info(self._url, self._app_id))
                if app:
                    found = [str(s.get("name")) for s in app.get("scopes") or [] if isinstance(s, dict)]
        return found

    def logout(self, revoke: bool | None = None) -> None:
        """Sign out: with `revoke`, tell Speckle to invalidate the token (and its refresh token); forget any
        remembered copy; close this client. By default a token a sign-in made (`made_here`) is revoked, and one
        the person brought (a personal access token) is kept valid: it may serve their scripts and CI too."""
        if self._closed:
            return
        revoke = self.made_here if revoke is None else revoke
        pair = self._auth.pair
        try:
            if revoke:
                try:
                    call(self._plain, protocol.logout(self._url, pair.token, pair.refresh_token))
                except LogoutFailed:
                    pass  # already invalid on the server: the goal is reached
        finally:
            for forget in self._forget:
                forget(self)
            self.close()

    def specklepy(self) -> Any:
        """An authenticated `specklepy` `SpeckleClient` for this server and token. specklepy cannot renew a
        token, so this client checks (and renews) it first; the typed errors of `graphql` apply."""
        self._check_open()
        try:
            from specklepy.api.client import SpeckleClient
        except ImportError:
            raise ImportError(
                'Client.specklepy() needs specklepy: pip install "speckle-nb-auth[specklepy]"'
            ) from None
        self.graphql(_STILL_VALID)
        scheme, _, host = self._url.partition("://")
        client = SpeckleClient(host=host, use_ssl=scheme == "https")
        try:
            client.authenticate_with_token(self._auth.pair.token)
        except Exception:  # noqa: BLE001 - specklepy's frames hold the token as plain text: none is shown
            raise SpeckleServerError(
                f"specklepy could not sign in to {self._url}, although this client just could: try again; if "
                "it keeps failing, check that your specklepy version supports this server."
            ) from None
        return client

    def close(self) -> None:
        """Refuse new calls at once; calls already on their way (another thread's) finish first."""
        with self._calls_lock:
            self._closed = True
            idle = self._calls == 0
        if idle:
            self._close_transports()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if not hasattr(self, "user"):
            return f"<speckle_nb_auth.Client server={self._url!r} (not validated)>"
        email = f" <{self.user.email}>" if self.user.email else ""
        state = " logged out" if self._closed else ""
        return (
            f"<speckle_nb_auth.Client{state} user={self.user.name!r}{email} server={self._url!r} "
            f"token={mask(self._auth.pair.token)}>"
        )

    __str__ = __repr__

    # --- for the package's own use -------------------------------------------------------------------------

    @property
    def token_pair(self) -> TokenPair:
        """The current pair, for the keyring and for revoking; never shown."""
        return self._auth.pair

    @property
    def closed(self) -> bool:
        """True once logged out or closed."""
        return self._closed

    @property
    def can_refresh(self) -> bool:
        return self._auth.can_refresh

    def on_logout(self, forget: Callable[[Client], None]) -> None:
        self._forget.append(forget)

    def _check_open(self) -> None:
        if self._closed:
            raise NotSignedIn("This Speckle client was logged out: sign in again with login().")

    @contextmanager
    def _in_call(self) -> Iterator[None]:
        """One call's requests. A sign-in replaced from the panel's thread closes this client while a cell
        may be using it: that call completes as it began; only calls begun after `close` are refused."""
        with self._calls_lock:
            self._check_open()
            self._calls += 1
        try:
            yield
        finally:
            with self._calls_lock:
                self._calls -= 1
                last = self._closed and self._calls == 0
            if last:
                self._close_transports()

    def _close_transports(self) -> None:
        self._http.close()
        self._plain.close()

    def _stored(self, old: TokenPair, new: TokenPair) -> None:
        """After a refresh: hand the new pair on, then retire the old one, which Speckle keeps valid."""
        if self._on_refresh is not None:
            self._on_refresh(new)
        try:
            call(self._plain, protocol.logout(self._url, old.token, old.refresh_token))
        except SpeckleAuthError as err:
            # Speckle's logout finds the refresh token through the access token, which a refresh caused by the
            # 403 finds already gone: the old refresh token then stays valid (see docs/design-notes.md). The
            # new pair works either way.
            _log.debug("After a refresh on %s the old token pair could not be retired (%s): its refresh token "
                       "stays valid until it expires or the app is revoked in Speckle's settings",
                       self._url, err.code)
