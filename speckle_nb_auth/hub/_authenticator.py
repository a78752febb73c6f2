"""`SpeckleAuthenticator`: people log in to JupyterHub with their Speckle account, and their kernels are signed in.

Speckle's sign-in is OAuth2 with its own shapes, so oauthenticator's hooks are varied here rather than configured:

- the authorize step is the path `/authn/verify/{appId}/{challenge}`, with no `state`, scope or redirect
  parameters: a fresh challenge per login goes into oauthenticator's state cookie, and that cookie (signed by the
  hub, set for this browser only) is what binds the callback to a login this browser started;
- the redirect carries `access_code` (or `denied=true`), not `code` and `state`;
- the exchange is JSON `{appId, appSecret, accessCode, challenge}` answered by `{token, refreshToken}`, and a
  renewal is the same route with `refreshToken`; the user is GraphQL's `activeUser`.

The token pair lives in `auth_state` (encrypted with `JUPYTERHUB_CRYPT_KEY`). `refresh_user` renews it through
the refresh token when Speckle refuses the token, one renewal at a time per user (Speckle's refresh tokens are
used once). Users' servers read the current token at `/hub/api/speckle/users/<name>/token` with their own API
token, which `configure(login=True)` grants `admin:auth_state!user` only; a POST there says "this token was
refused" and renews at once. Hub logout revokes the pair on Speckle. No token, code or secret is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

import httpx
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from oauthenticator.oauth2 import (
    OAuthCallbackHandler,
    OAuthenticator,
    OAuthLoginHandler,
    OAuthLogoutHandler,
    _deserialize_state,
    _serialize_state,
)
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Set, Unicode, default

from .._errors import InvalidToken, SpeckleAuthError
from .._protocol import authorize_url, exchange_code, logout, make_verifier, normalize_server_url, refresh, whoami
from .._secret import Secret
from .._transport import acall, ssl_context

__all__ = ["SpeckleAuthenticator", "token_digest"]

DEFAULT_SERVER = "https://app.speckle.systems"
DENIED = ("You did not allow the hub to use your Speckle account, so you are not logged in. Log in again and "
          "choose Allow on Speckle's page to use the hub.")
NO_CODE = "Speckle sent this tab back without a sign-in code: log in to the hub again."


def token_digest(token: str) -> str:
    """What a user's server sends to say which token Speckle refused: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


class SpeckleLoginHandler(OAuthLoginHandler):
    """Sends the browser to Speckle's sign-in page with a fresh challenge, kept in the state cookie."""

    def get(self) -> None:
        authenticator: SpeckleAuthenticator = self.authenticator
        challenge = str(make_verifier())  # `plain`: the challenge is the verifier (Speckle has no S256)
        state = {"state_id": self._generate_state_id(), "next_url": self._get_next_url(), "challenge": challenge}
        self.set_state_cookie(_serialize_state(state))
        # 303, not 302: JupyterHub's access log shows a 302's target, and this one holds the challenge
        self.redirect(authorize_url(authenticator.speckle_server, authenticator.client_id, challenge), status=303)


class SpeckleCallbackHandler(OAuthCallbackHandler):
    """Speckle's redirect: `access_code`, or `denied=true`; no `state` (the cookie stands in for it)."""

    def check_error(self) -> None:
        if self.get_argument("denied", "") == "true":
            raise web.HTTPError(403, DENIED)

    def check_code(self) -> None:
        if not self.get_argument("access_code", ""):
            raise web.HTTPError(400, NO_CODE)

    def check_state(self) -> None:
        if not _deserialize_state(self.get_state_cookie()).get("challenge"):
            raise web.HTTPError(400, "This browser started no login to the hub here (or it expired): log in again.")


class SpeckleLogoutHandler(OAuthLogoutHandler):
    """Hub logout ends the Speckle sign-in too: the pair is revoked on Speckle and forgotten here."""

    async def handle_logout(self) -> None:
        await super().handle_logout()
        user = self.current_user
        if user is not None:
            await self.authenticator.end_sign_in(user)


class SpeckleTokenHandler(APIHandler):
    """`GET`: the user's current Speckle token and server. `POST {"refused": digest}`: Speckle refused that token;
    renew now (unless another of the user's servers already did) and answer the current one."""

    @needs_scope("admin:auth_state")
    async def get(self, user_name: str) -> None:
        await self._answer(user_name)

    @needs_scope("admin:auth_state")
    async def post(self, user_name: str) -> None:
        body = self.get_json_body() or {}
        refused = body.get("refused") if isinstance(body, dict) else None
        user = self.find_user(user_name)
        if user is not None and isinstance(refused, str):
            state = await user.get_auth_state() or {}
            if token_digest(str(state.get("access_token") or "")) == refused:
                if await self.refresh_auth(user, force=True) is None:
                    raise web.HTTPError(403, "The hub could not renew your Speckle sign-in: log in to the hub again.")
        await self._answer(user_name)

    async def _answer(self, user_name: str) -> None:
        user = self.find_user(user_name)
        state = (await user.get_auth_state() or {}) if user is not None else {}
        token = state.get("access_token")
        if not token:
            raise web.HTTPError(404, "You are not logged in to the hub with Speckle (or you logged out): log in to "
                                     "the hub again.")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps({"server_url": state.get("speckle_server", ""), "token": token}))


class SpeckleAuthenticator(OAuthenticator):
    """Log in to JupyterHub with a Speckle account (an app registered on the Speckle server, whose redirect URL is
    the hub's `.../hub/oauth_callback`). `speckle_nb_auth.hub.configure(c, ..., login=True)` sets it up."""

    login_service = "Speckle"
    user_auth_state_key = "speckle_user"
    login_handler = SpeckleLoginHandler
    callback_handler = SpeckleCallbackHandler
    logout_handler = SpeckleLogoutHandler

    speckle_server = Unicode(config=True, help="The Speckle server people log in with.")
    client_secret_env = Unicode(
        "SPECKLE_APP_SECRET", config=True,
        help="The hub's environment variable that holds the app secret (so it is in no configuration file).",
    )
    allowed_domains = Set(
        config=True, help="Email domains whose Speckle users may use the hub (besides allowed_users, admin_users).",
    )

    @default("speckle_server")
    def _speckle_server_default(self) -> str:
        return os.environ.get("SPECKLE_SERVER", "") or DEFAULT_SERVER

    @default("client_secret")
    def _client_secret_default(self) -> str:
        return os.environ.get(self.client_secret_env, "")

    @default("username_claim")
    def _username_claim_default(self) -> str:
        return "email"

    @default("enable_auth_state")
    def _enable_auth_state_default(self) -> bool:
        return True  # the token pair lives there: kernels sign in from it

    @default("authorize_url")
    def _authorize_url_default(self) -> str:
        return f"{self.speckle_server.rstrip('/')}/authn/verify"

    @default("token_url")
    def _token_url_default(self) -> str:
        return f"{self.speckle_server.rstrip('/')}/auth/token"

    @default("userdata_url")
    def _userdata_url_default(self) -> str:
        return f"{self.speckle_server.rstrip('/')}/graphql"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.speckle_server = normalize_server_url(self.speckle_server, allow_http=True)
        self._renewing: dict[str, asyncio.Lock] = {}
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30, verify=ssl_context())
        return self._http

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        return [*super().get_handlers(app), (r"/api/speckle/users/([^/]+)/token", SpeckleTokenHandler)]

    def normalize_username(self, username: str) -> str:
        return super().normalize_username(username).strip().lower()

    # --- oauthenticator's hooks, in Speckle's shapes --------------------------------------------------------

    def build_access_tokens_request_params(self, handler: Any, data: Any = None) -> dict[str, Any]:
        state = _deserialize_state(handler.get_state_cookie())
        return {"grant_type": "authorization_code", "access_code": Secret(handler.get_argument("access_code", "")),
                "challenge": Secret(state.get("challenge") or "")}

    def build_refresh_token_request_params(self, refresh_token: str) -> dict[str, Any]:
        return {"grant_type": "refresh_token", "refresh_token": Secret(refresh_token)}

    async def get_token_info(self, handler: Any, params: dict[str, Any]) -> dict[str, Any]:
        secret = Secret(self.client_secret)
        try:
            if params["grant_type"] == "refresh_token":
                call = refresh(self.speckle_server, self.client_id, secret, params["refresh_token"])
            else:
                call = exchange_code(self.speckle_server, self.client_id, secret, params["access_code"],
                                     params["challenge"])
            pair = await acall(self.http, call)
        except SpeckleAuthError as err:  # its message names no secret
            raise web.HTTPError(403, f"Speckle did not sign you in: {err.message}") from None
        return {"access_token": pair.token, "refresh_token": pair.refresh_token, "token_type": "Bearer"}

    async def token_to_user(self, token_info: dict[str, Any]) -> dict[str, Any]:
        try:
            me = await acall(self.http, whoami(self.speckle_server, token_info["access_token"]))
        except InvalidToken:
            raise HTTPClientError(401, "Speckle refused the token") from None  # refresh_user renews on a 4xx
        except SpeckleAuthError as err:
            raise web.HTTPError(502, f"Speckle could not be asked who you are: {err.message}") from None
        return {"id": me.user.id, "name": me.user.name, "email": (me.user.email or "").lower(),
                "server_url": self.speckle_server, "server_name": me.server.name}

    def build_auth_state_dict(self, token_info: dict[str, Any], user_info: dict[str, Any]) -> dict[str, Any]:
        token = str(token_info["access_token"])  # plain strings: JupyterHub stores auth_state as encrypted JSON
        refresh_token = str(token_info["refresh_token"]) if token_info.get("refresh_token") else None
        return {
            "access_token": token,
            "refresh_token": refresh_token,
            # what oauthenticator's refresh_user checks again, and renews with when Speckle refuses it
            "token_response": {"access_token": token, "refresh_token": refresh_token, "token_type": "Bearer"},
            "speckle_server": self.speckle_server,
            self.user_auth_state_key: user_info,
        }

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """True while Speckle takes the token; a renewed model once it refuses it; False: log in again."""
        # one renewal at a time per user: a refresh token is good once, and two requests may find the token stale
        async with self._renewing.setdefault(user.name, asyncio.Lock()):
            state = await user.get_auth_state() or {}
            if not state.get("access_token"):
                return False
            try:
                await self.token_to_user({"access_token": state["access_token"]})
                return True
            except HTTPClientError:
                pass  # refused: renew below
            if not state.get("refresh_token"):
                return False
            try:
                params = self.build_refresh_token_request_params(state["refresh_token"])
                info = await self.get_token_info(handler, params)
                user_info = await self.token_to_user(info)
            except (web.HTTPError, HTTPClientError) as err:
                self.log.info("Renewing %s's Speckle sign-in failed (%s): they log in again", user.name,
                              type(err).__name__)
                return False
            renewed = self.build_auth_state_dict(info, user_info)
            # saved before the next waiting request reads it (JupyterHub saves it too, but after this lock)
            await user.save_auth_state(renewed)
            return {"name": user.name, "auth_state": renewed}

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        if await super().check_allowed(username, auth_model):
            return True
        state = (auth_model or {}).get("auth_state") or {}
        email = str((state.get(self.user_auth_state_key) or {}).get("email") or "")
        return bool(self.allowed_domains) and email.rpartition("@")[2] in {d.lower() for d in self.allowed_domains}

    async def end_sign_in(self, user: Any) -> None:
        """Revoke the user's pair on Speckle (a failure is logged by kind only) and forget it."""
        state = await user.get_auth_state() or {}
        token = state.get("access_token")
        if token:
            try:
                await acall(self.http, logout(self.speckle_server, token, state.get("refresh_token")))
            except SpeckleAuthError as err:
                self.log.warning("Revoking %s's Speckle token at logout failed (%s)", user.name, type(err).__name__)
        await user.save_auth_state(None)
