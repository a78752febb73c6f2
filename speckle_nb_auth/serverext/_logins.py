"""What the routes do, without Tornado: start a login, finish it from Speckle's callback, refresh a token, and
check at start-up that each app sends users back where this server expects them.

Every Speckle call goes through the one shared `httpx.AsyncClient` (`_transport.acall`), so nothing blocks the
event loop, and every failure arrives as a typed error (`_errors`) whose message is safe to show and to log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from .._errors import SpeckleAuthError
from .._protocol import (
    ChallengeMethod,
    TokenPair,
    app_info,
    authorize_url,
    challenge_for,
    exchange_code,
    logout,
    make_verifier,
    refresh,
    whoami,
)
from .._transport import acall
from .._version import __version__
from ._config import SpeckleServer, find_server
from ._flows import FlowIdInUse, FlowStore, is_flow_id

__all__ = ["CallbackProblem", "Logins", "Refused", "check_redirect_uris"]

# Why a callback changed no flow, for the result page: its code came for a flow that is no longer pending, or
# it carried neither a code nor a denial.
CallbackProblem = Literal["used", "no_code"]


class Refused(Exception):
    """A request this extension will not carry out: an HTTP status, a stable `code`, and a title and message
    that are safe to show."""

    def __init__(self, status: int, code: str, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.title = title
        self.message = message


class Logins:
    def __init__(
        self,
        servers: Sequence[SpeckleServer],
        default_server: SpeckleServer | None,
        store: FlowStore,
        client: httpx.AsyncClient,
        *,
        challenge_method: ChallengeMethod = "plain",
        allow_http: bool = False,
        log: logging.Logger,
    ) -> None:
        self.servers = list(servers)
        self.default_server = default_server
        self.store = store
        self.client = client
        self.challenge_method: ChallengeMethod = challenge_method
        self.allow_http = allow_http
        self.log = log

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "servers": [server.public() for server in self.servers],
            "default_server": self.default_server.url if self.default_server else None,
        }

    def start(self, server_url: str | None, flow_id: str | None, *, replaces: str | None) -> str:
        """Create the flow `flow_id` for a login to `server_url` (the default server when None) and return
        the address of Speckle's sign-in page to send the browser to. `replaces` is the flow named by the
        browser's cookie, superseded if still pending."""
        if not is_flow_id(flow_id):
            raise Refused(
                400,
                "bad_flow_id",
                "Login link not valid",
                "The login link does not carry a valid login id, so no login was started.",
            )
        assert flow_id is not None  # for type checkers: is_flow_id said so
        server = self._server(server_url)
        app_id, _ = server.app_credentials()
        verifier = make_verifier()
        challenge = challenge_for(verifier, self.challenge_method)
        try:
            self.store.start(flow_id, server.url, verifier, challenge, replaces=replaces)
        except FlowIdInUse:
            raise Refused(
                409,
                "flow_in_use",
                "Login link already used",
                "This login link was already used to start a login; each link starts one login only.",
            ) from None
        self.log.debug("Speckle login %s started for %s", flow_id, server.url)
        return authorize_url(server.url, app_id, challenge)

    async def finish(
        self, flow_id: str | None, access_code: str | None, denied: bool
    ) -> CallbackProblem | None:
        """Complete the flow named by the browser's cookie from Speckle's callback. Its outcome is stored in
        the flow; the return value says why no flow was changed, when the flow itself does not tell."""
        if denied:
            if flow_id is None:
                return None
            if self.store.deny(flow_id) is None:
                return self._why_unchanged(flow_id)
            self.log.info("Speckle login %s was declined on Speckle's consent page", flow_id)
            return None
        if not access_code:
            return "no_code"
        if flow_id is None:
            self.log.warning("A Speckle callback came without this server's login cookie: nothing exchanged")
            return None
        flow = self.store.begin_exchange(flow_id)
        if flow is None:
            self.log.warning("A Speckle callback came for login %s, not pending: nothing exchanged", flow_id)
            return self._why_unchanged(flow_id)
        tokens: TokenPair | None = None
        try:
            app_id, app_secret = self._server(flow.server_url).app_credentials()
            exchange = exchange_code(flow.server_url, app_id, app_secret, access_code, flow.verifier)
            tokens = await acall(self.client, exchange)
            # names the user on the result page, and keeps a token Speckle does not accept from the panel
            me = await acall(self.client, whoami(flow.server_url, tokens.token))
        except SpeckleAuthError as err:
            self.store.fail(flow, err.code, err.message)
            self.log.warning("Speckle login %s failed (%s): %s", flow_id, err.code, err.message)
        except Exception as err:  # a bug must still end in a page; its text could quote what was sent
            self.store.fail(flow, "error", "The login failed because of an unexpected error.")
            self.log.error("Speckle login %s failed with an unexpected %s", flow_id, type(err).__name__)
        else:
            self.store.succeed(flow, tokens, me.user.name)
            self.log.info("Speckle login %s completed for %s", flow_id, flow.server_url)
            return None
        if tokens is not None:  # issued, but nobody will ever hold it: take it back
            await self._revoke(flow.server_url, tokens)
        return None

    async def _revoke(self, server_url: str, tokens: TokenPair) -> None:
        try:
            await acall(self.client, logout(server_url, tokens.token, tokens.refresh_token))
        except SpeckleAuthError:
            self.log.warning("A token Speckle issued for a failed login could not be revoked on %s", server_url)

    def _why_unchanged(self, flow_id: str) -> CallbackProblem | None:
        flow = self.store.get(flow_id)
        # an expired or superseded flow, or none, explains itself on the result page
        if flow is None or flow.status in ("expired", "superseded"):
            return None
        return "used"

    async def refresh(self, server_url: Any, refresh_token: Any) -> TokenPair:
        if not isinstance(server_url, str) or not isinstance(refresh_token, str) or not refresh_token:
            raise Refused(
                400,
                "bad_request",
                "Bad request",
                'Send a JSON body {"server_url": "...", "refresh_token": "..."}.',
            )
        server = self._server(server_url)
        app_id, app_secret = server.app_credentials()
        return await acall(self.client, refresh(server.url, app_id, app_secret, refresh_token))

    def app_id_of(self, server_url: str) -> str | None:
        """The id of the app whose tokens this server's logins give (public: it is in every authorize URL)."""
        server = find_server(self.servers, server_url, allow_http=self.allow_http)
        return server.app_id if server is not None else None

    def _server(self, server_url: str | None) -> SpeckleServer:
        """The configured server with a working app that `server_url` names, or `Refused` saying why not."""
        server = self.default_server
        if server_url:
            server = find_server(self.servers, server_url, allow_http=self.allow_http)
        if server is None:
            known = ", ".join(s.url for s in self.servers) or "none"
            raise Refused(
                400,
                "unknown_server",
                "Unknown Speckle server",
                "This Jupyter server is not set up to log in to that Speckle server "
                f"(servers set up: {known}).",
            )
        if server.problem:
            raise Refused(
                500,
                "configuration",
                "Login with Speckle is not set up correctly",
                f"Logging in to {server.url} is off because {server.problem}. Ask whoever runs this Jupyter "
                "server to fix its configuration; meanwhile a personal access token works.",
            )
        if not server.oauth:
            raise Refused(
                400,
                "no_app",
                "No Speckle app for this server",
                f"This Jupyter server has no Speckle app for {server.url}, so it cannot log you in there: "
                "use a personal access token instead.",
            )
        return server


async def check_redirect_uris(
    client: httpx.AsyncClient, servers: Sequence[SpeckleServer], redirect_uri: str, log: logging.Logger
) -> None:
    """Warn when an app's registered redirect URL is not the one this server expects: the most common set-up
    mistake, which otherwise shows only when a user's login lands on the wrong page. Never raises."""
    for server in servers:
        if not server.oauth:
            continue
        app_id, _ = server.app_credentials()
        try:
            app = await acall(client, app_info(server.url, app_id))
        except SpeckleAuthError as err:
            log.warning("Could not check the Speckle app %s on %s: %s", app_id, server.url, err.message)
            continue
        except Exception as err:
            log.warning("Could not check the Speckle app on %s (%s)", server.url, type(err).__name__)
            continue
        if not isinstance(app, dict):
            log.warning(
                "%s knows no app with the id %s configured for it: logins there will fail; check app_id in "
                "the Jupyter configuration.",
                server.url,
                app_id,
            )
            continue
        registered = app.get("redirectUrl")
        if registered == redirect_uri:
            log.info("The Speckle app %s on %s sends users back here, as expected", app_id, server.url)
            continue
        log.warning(
            "The Speckle app %s on %s sends users back to %r, but this Jupyter server expects %r: logins "
            "will not come back here. Change the app's redirect URL on Speckle, or set "
            "SpeckleAuthApp.redirect_uri (or SPECKLE_REDIRECT_URI) to the URL that does reach this server.",
            app_id,
            server.url,
            registered,
            redirect_uri,
        )
