"""What the routes do, without Tornado: start a login, finish it from Speckle's callback, refresh a token, and
check at start-up that each app sends users back where this server expects them.

Every Speckle call goes through the one shared `httpx.AsyncClient` (`_transport.acall`), so nothing blocks the
event loop, and every failure arrives as a typed error (`_errors`) whose message is safe to show and to log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal

import httpx

from .._errors import SpeckleAuthError, SpeckleUnreachable
from .._protocol import (
    ChallengeMethod,
    Secret,
    TokenPair,
    app_info,
    authorize_url,
    challenge_for,
    exchange_code,
    make_verifier,
    refresh,
    whoami,
)
from .._public_app import PUBLIC_APP_ID, PublicLogin, aconnector_app, arefresh, arevoke_unheld
from .._receiver import LoopbackReceiver, PortBusy, PortHeldByAnother, Received
from .._transport import acall
from .._version import __version__
from ._config import SpeckleServer, find_server, typed_public_server
from ._flows import Flow, FlowIdInUse, FlowStore, is_flow_id
from ._mailbox import Mailboxes

__all__ = ["CallbackProblem", "Logins", "Refused", "check_redirect_uris"]

# Why a callback changed no flow, for the result page: its code came for a flow that is no longer pending, or
# it carried neither a code nor a denial.
CallbackProblem = Literal["used", "no_code"]


class Refused(Exception):
    """A request the login routes (the extension's or the hub's) will not carry out: an HTTP status, a stable
    `code`, and a title and message that are safe to show."""

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
        any_public_server: bool = False,
        log: logging.Logger,
    ) -> None:
        self.servers = list(servers)
        self.any_public_server = any_public_server  # the public app on any typed server: never for a hub
        self.default_server = default_server
        self.store = store
        self.client = client
        self.challenge_method: ChallengeMethod = challenge_method
        self.allow_http = allow_http
        self.log = log
        self.mailboxes = Mailboxes()
        self.receivers: dict[str, LoopbackReceiver] = {}  # flow id -> the listener of a public-app login
        self.public_scopes: dict[str, list[str]] = {}  # server URL -> the connector app's scopes, once known

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "mailbox": True,  # the panel may reach its kernel through `mailbox/<id>` while a cell runs
            "servers": [self._public(server) for server in self.servers],
            "default_server": self.default_server.url if self.default_server else None,
            "any_server": self.any_public_server,
        }

    def _public(self, server: SpeckleServer) -> dict[str, Any]:
        shown = server.public()
        if server.login_app == "public" and server.url in self.public_scopes:
            shown["scopes"] = self.public_scopes[server.url]
        return shown

    async def start(
        self,
        server_url: str | None,
        flow_id: str | None,
        *,
        replaces: str | None,
        return_url: str = "",
        browser_is_local: bool = True,
    ) -> str:
        """Create the flow `flow_id` for a login to `server_url` (the default server when None) and return
        the address of Speckle's sign-in page to send the browser to. `replaces` is the flow named by the
        browser's cookie, superseded if still pending.

        With the public connector app, Speckle sends the browser to a loopback address: a receiver listens
        there when the browser runs on this machine (`browser_is_local`), and sends it on to `return_url`;
        otherwise, or when the port is taken, the flow waits for the panel to paste the page's address."""
        if not is_flow_id(flow_id):
            raise Refused(
                400,
                "bad_flow_id",
                "Login link not valid",
                "The login link does not carry a valid login id, so no login was started.",
            )
        assert flow_id is not None  # for type checkers: is_flow_id said so
        server = self._server(server_url)
        public: PublicLogin | None = None
        if server.login_app == "public":
            try:
                app = await aconnector_app(server.url, http=self.client)
            except SpeckleUnreachable:
                raise _nothing_answers(server.url, self.servers) from None
            except SpeckleAuthError as err:
                raise Refused(502, err.code, "Speckle's connector app is not available", err.message) from None
            self.public_scopes[server.url] = list(app.scopes)
            public = PublicLogin(server.url, app)
            app_id, verifier, challenge = PUBLIC_APP_ID, "", public.challenge  # its verifier stays in `public`
        else:
            app_id = server.app_credentials()[0]
            verifier = make_verifier()
            challenge = challenge_for(verifier, self.challenge_method)
        try:
            flow = self.store.start(flow_id, server.url, verifier, challenge, replaces=replaces, app_id=app_id,
                                    public=public)
        except FlowIdInUse:
            raise Refused(
                409,
                "flow_in_use",
                "Login link already used",
                "This login link was already used to start a login; each link starts one login only.",
            ) from None
        if public is not None:
            self._listen(flow, public, return_url, browser_is_local)
        self.log.debug("Speckle login %s started for %s", flow_id, server.url)
        return Secret(authorize_url(server.url, app_id, challenge))  # it holds the challenge

    def _listen(self, flow: Flow, public: PublicLogin, return_url: str, browser_is_local: bool) -> None:
        """Listen for a public-app login's answer on its loopback redirect (one at a time: the port is one)."""
        self.close_receivers()
        if not browser_is_local:
            flow.paste = True
            return
        loop = asyncio.get_running_loop()

        def on_result(received: Received) -> None:  # the receiver's thread
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._received(flow.id, received)))

        try:
            receiver = public.listen(on_result, return_url=return_url or None, lifetime=self.store.lifetime)
        except PortHeldByAnother as err:
            self.store.stop(flow, err.code, err.message)
            self.log.warning("Speckle login %s: %s", flow.id, err.message)
            raise Refused(409, err.code, "Another user holds the sign-in port", err.message) from None
        except PortBusy:
            flow.paste = True
            self.log.info("Speckle login %s: %s is in use, so the panel asks for the page's address",
                          flow.id, public.app.redirect_url)
            return
        except SpeckleAuthError as err:  # a redirect URL no listener here can serve
            flow.paste = True
            self.log.warning("Speckle login %s: no loopback receiver (%s)", flow.id, err.message)
            return
        self.receivers[flow.id] = receiver

    async def _received(self, flow_id: str, received: Received) -> None:
        self.receivers.pop(flow_id, None)
        if received.kind == "denied":
            if self.store.deny(flow_id) is not None:
                self.log.info("Speckle login %s was declined", flow_id)
        elif received.kind == "code" and received.code:
            await self.finish_with_code(flow_id, received.code)

    async def learn_public_scopes(self) -> None:
        """Ask each public-app server for the connector app's scopes, so the panel can say before a sign-in
        when they lack what a notebook needs. Never raises."""
        for server in self.servers:
            if server.login_app != "public":
                continue
            try:
                app = await aconnector_app(server.url, http=self.client)
            except Exception as err:  # noqa: BLE001 - a server down at start-up is told at login time
                self.log.info("Could not ask %s about its connector app (%s)", server.url, type(err).__name__)
                continue
            self.public_scopes[server.url] = list(app.scopes)

    def cancel(self, flow_id: str) -> None:
        """The panel's Cancel: a pending login ends, and its loopback port closes now rather than when its
        10 minutes are up."""
        receiver = self.receivers.pop(flow_id, None)
        if receiver is not None:
            receiver.close()
        flow = self.store.get(flow_id)
        if flow is not None:
            self.store.stop(flow, "cancelled", "This login was cancelled in the notebook: start it again there.")
            self.log.debug("Speckle login %s was cancelled", flow_id)

    def close_receivers(self) -> None:
        receivers, self.receivers = self.receivers, {}
        for receiver in receivers.values():
            receiver.close()

    async def finish_pasted(self, flow_id: str, pasted: Any) -> None:
        """The panel pasted the address the sign-in tab ended on (or the code) for `flow_id`."""
        if not isinstance(pasted, str):
            raise Refused(400, "bad_request", "Bad request", 'Send a JSON body {"pasted": "..."}.')
        pasted = Secret(pasted)  # what a failing line of this frame shows: it holds the code
        try:
            code = PublicLogin.code_from(pasted)
        except SpeckleAuthError as err:
            raise Refused(400, err.code, "Not a sign-in address", err.message) from None
        flow = self.store.get(flow_id)
        if flow is None or flow.status != "pending":
            raise Refused(409, "not_pending", "No sign-in waits for this",
                          "This sign-in is no longer waiting for its code: log in again.")
        receiver = self.receivers.pop(flow_id, None)
        if receiver is not None:
            receiver.close()  # the code came another way: nothing more to listen for
        await self.finish_with_code(flow_id, code)
        ended = self.store.get(flow_id)
        if ended is not None and ended.status == "failed":
            raise Refused(400, ended.error_code or "failed", "Sign-in failed", ended.message)

    async def finish_with_code(self, flow_id: str, access_code: str) -> None:
        """Exchange `access_code` for the pending flow `flow_id` (its verifier, its app)."""
        access_code = Secret(access_code)
        flow = self.store.begin_exchange(flow_id)
        if flow is None:
            self.log.warning("A Speckle code came for login %s, not pending: nothing exchanged", flow_id)
            return
        await self._exchange(flow, access_code)

    async def finish(
        self, flow_id: str | None, access_code: str | None, denied: bool
    ) -> CallbackProblem | None:
        """Complete the flow named by the browser's cookie from Speckle's callback. Its outcome is stored in
        the flow; the return value says why no flow was changed, when the flow itself does not tell."""
        access_code = Secret(access_code) if access_code else None
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
        await self._exchange(flow, access_code)
        return None

    async def _exchange(self, flow: Flow, access_code: str) -> None:
        flow_id, access_code = flow.id, Secret(access_code)
        tokens: TokenPair | None = None
        try:
            if flow.public is not None:
                tokens = await flow.public.aexchange(access_code, http=self.client)
            else:
                app_id, app_secret = _app(self._server(flow.server_url))
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
            self.store.succeed(flow, tokens, me.user.name, me.user.email or "")
            self.log.info("Speckle login %s completed for %s", flow_id, flow.server_url)
            return
        if tokens is not None:  # issued, but nobody will ever hold it: take it back
            await self._revoke(flow.server_url, tokens)

    async def _revoke(self, server_url: str, tokens: TokenPair) -> None:
        if not await arevoke_unheld(self.client, server_url, tokens):
            self.log.warning("A token Speckle issued for a failed login could not be revoked on %s", server_url)

    def _why_unchanged(self, flow_id: str) -> CallbackProblem | None:
        flow = self.store.get(flow_id)
        # an expired or superseded flow, or none, explains itself on the result page
        if flow is None or flow.status in ("expired", "superseded"):
            return None
        return "used"

    async def refresh(self, server_url: Any, refresh_token: Any, app_id: Any = None) -> TokenPair:
        if not isinstance(server_url, str) or not isinstance(refresh_token, str) or not refresh_token:
            raise Refused(
                400,
                "bad_request",
                "Bad request",
                'Send a JSON body {"server_url": "...", "refresh_token": "..."}.',
            )
        refresh_token = Secret(refresh_token)
        server = self._server(server_url)
        if app_id == PUBLIC_APP_ID or server.login_app == "public":
            return await arefresh(self.client, server.url, refresh_token)
        registered_id, app_secret = _app(server)
        return await acall(self.client, refresh(server.url, registered_id, app_secret, refresh_token))

    def _server(self, server_url: str | None) -> SpeckleServer:
        """The configured server with a working app that `server_url` names, or `Refused` saying why not."""
        server = self.default_server
        if server_url:
            server = find_server(self.servers, server_url, allow_http=self.allow_http)
            if server is None and self.any_public_server:
                server = typed_public_server(server_url, allow_http=self.allow_http)
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
        if server.login_app is None:
            raise Refused(
                400,
                "no_app",
                "No Speckle app for this server",
                f"This Jupyter server has no Speckle app for {server.url}, so it cannot log you in there: "
                "use a personal access token instead.",
            )
        return server


def _nothing_answers(url: str, servers: Sequence[SpeckleServer]) -> Refused:
    known = ", ".join(s.url for s in servers) or "none"
    return Refused(502, "unreachable", "Nothing answers at that address",
                   f"Nothing answers at {url}: is the address right (a typo)? Servers set up here: {known}.")


def _app(server: SpeckleServer) -> tuple[str, Secret]:
    """The registered app's id and secret, the secret masked wherever a traceback shows it."""
    app_id, app_secret = server.app_credentials()
    return app_id, Secret(app_secret)


async def check_redirect_uris(
    client: httpx.AsyncClient, servers: Sequence[SpeckleServer], redirect_uri: str, log: logging.Logger
) -> None:
    """Warn when an app's registered redirect URL is not the one this server expects: the most common set-up
    mistake, which otherwise shows only when a user's login lands on the wrong page. Never raises."""
    for server in servers:
        if not server.oauth:
            continue
        app_id = server.app_credentials()[0]
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
