"""The emulator's HTTP side: Tornado handlers for Speckle's routes, its web frontend, and a control API for
tests.

Handlers are thin: read the request, call `_state` or `_schema`, write the answer as Speckle's Express server
does (compact JSON, errors as text/html, CORS on every answer). Every request to a Speckle route first meets
the fault table, then the Authorization check, which the server makes before any route runs. The control API
(faults, clock) is the emulator's own: it wants the random control token and allows no other origin, so a page
on another site cannot break or expire a class's server.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any, ClassVar

from tornado.web import Application, HTTPError, RequestHandler

from ._faults import Traffic
from ._pages import consent_page, error_page, home_page, sign_in_page, tokens_page
from ._schema import Context, run
from ._state import App, Rejected, State, Token, TokenCreateError

__all__ = ["SESSION_COOKIE", "make_app"]

SESSION_COOKIE = "speckle_emulator_session"
_INVALID_TOKEN = b'{"error":"Your token is not valid."}'
_JSON = "application/json; charset=utf-8"
_EXPRESS_TEXT = "text/html; charset=utf-8"  # what Express sends with a string body

_log = logging.getLogger("speckle_nb_auth.emulator")


class _Base(RequestHandler):
    # Logged instead of the URL, whose query or path can carry a token, a code or a challenge.
    route: ClassVar[str] = "(unknown route)"

    def initialize(self, state: State, traffic: Traffic, control_token: str) -> None:
        self.state = state
        self.traffic = traffic
        self.control_token = control_token

    def set_default_headers(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")

    def options(self, *_args: str) -> None:
        self.set_status(204)
        self.set_header("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
        requested = self.request.headers.get("Access-Control-Request-Headers")
        if requested:
            self.set_header("Access-Control-Allow-Headers", requested)
        self.finish()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self._send(status_code, (self._reason or "Error").encode(), "text/plain; charset=utf-8")

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        # Tornado's own version logs the whole request, query string included.
        if not isinstance(value, HTTPError):
            method, route = self.request.method, self.route
            _log.error("uncaught exception in %s %s", method, route, exc_info=(typ, value, tb))

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", content_type)
        self.finish(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value, separators=(",", ":")).encode(), _JSON)

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), _EXPRESS_TEXT)

    def _html(self, status: int, page: str) -> None:
        self.set_header("Cache-Control", "no-store")
        self._send(status, page.encode(), "text/html; charset=utf-8")

    def _fields(self) -> dict[str, Any] | None:
        """The body as Express reads it (JSON or a form), or None when it is malformed JSON."""
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                data = json.loads(self.request.body) if self.request.body.strip() else {}
            except ValueError:
                return None
            return data if isinstance(data, dict) else {}
        if content_type == "application/x-www-form-urlencoded":
            form = self.request.body_arguments
            return {name: values[-1].decode("utf-8", "replace") for name, values in form.items()}
        return {}


class _Speckle(_Base):
    """A route of the emulated server: faults first, then the Authorization header."""

    token: Token | None = None

    async def prepare(self) -> None:
        fault = self.traffic.arrive(self.request.path, self.request.headers.get_all())
        if fault is not None:
            if fault.kind == "drop":
                self.detach().close()
                return
            if fault.kind == "error":
                self._send(fault.status, b"Internal Server Error", "text/plain; charset=utf-8")
                return
            if fault.kind == "sso":
                self._send(401, _sso_expired(fault.workspace), _JSON)
                return
            await asyncio.sleep(fault.delay)
        if self.request.method != "OPTIONS":
            self._authenticate()

    def _authenticate(self) -> None:
        header = self.request.headers.get("Authorization", "").strip()
        if not header:
            return  # anonymous
        value = header[7:].strip() if header[:7].lower() == "bearer " else header
        self.token = self.state.authenticate(value)
        if self.token is None:
            self._send(403, _INVALID_TOKEN, _JSON)

    def _found(self, url: str) -> None:
        """A 302 as Express's `res.redirect` writes it for a client that takes text."""
        self.set_header("Location", url)
        self._send(302, f"Found. Redirecting to {url}".encode(), "text/plain; charset=utf-8")


class _AccessCode(_Speckle):
    route = "/auth/accesscode"

    def get(self) -> None:
        def arg(name: str) -> str:
            return self.get_query_argument(name, "") or ""

        try:
            url = self.state.grant_code(arg("appId"), arg("challenge"), arg("token"))
        except Rejected as err:
            return self._text(400, str(err))
        if arg("preventRedirect"):  # any value counts, "false" too, as on the server
            self._json(200, {"redirectUrl": url})
        else:
            self._found(url)


class _Token(_Speckle):
    route = "/auth/token"

    def post(self) -> None:
        fields = self._fields()
        if fields is None:
            return self._text(400, "Bad Request")
        try:
            grant = self.state.token_request(fields)
        except Rejected as err:
            return self._json(401, {"err": str(err)})
        if grant.refreshed:  # a new token must not stay in a browser's or a proxy's cache
            self.set_header("Cache-Control", "no-cache, no-store")
            self.set_header("Expires", "0")
            self.set_header("Pragma", "no-cache")
        self._json(200, {"token": grant.token, "refreshToken": grant.refresh_token})


class _Logout(_Speckle):
    route = "/auth/logout"

    def post(self) -> None:
        fields = self._fields()
        if fields is None:
            return self._text(400, "Bad Request")
        try:
            self.state.logout(fields)
        except Rejected as err:
            return self._text(400, str(err))
        self._json(200, {"message": "You have logged out."})


class _GraphQL(_Speckle):
    route = "/graphql"

    def post(self) -> None:
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = None
        context = Context(self.state, self.token, f"{self.request.protocol}://{self.request.host}")
        status, payload = run(body, context)
        if status == 200:
            self.set_header("Cache-Control", "no-store")
        self._json(status, payload)


class _Verify(_Speckle):
    """The web frontend's sign-in and consent pages, which the app flow sends the browser to."""

    route = "/authn/verify/{appId}/{challenge}"

    def get(self, app_id: str, challenge: str) -> None:
        app = self.state.app(app_id)
        if app is None:
            return self._unknown_app()
        token = self.state.session_token(self.get_cookie(SESSION_COOKIE))
        if token is None:
            return self._html(200, sign_in_page(app, self.state.emails(), self.xsrf_form_html()))
        if app.trusted:  # no consent screen for apps trusted by default
            return self._authorize(app, challenge, token)
        self._html(200, consent_page(app, self.state.user(token.user_id), self.xsrf_form_html()))

    def post(self, app_id: str, challenge: str) -> None:
        self.check_xsrf_cookie()
        app = self.state.app(app_id)
        if app is None:
            return self._unknown_app()
        action = self.get_body_argument("action", "")
        if action == "signin":
            email, password = self.get_body_argument("email", ""), self.get_body_argument("password", "")
            session = self.state.sign_in(email, password)
            if session is None:
                error = "Wrong email or password."
                return self._html(401, sign_in_page(app, self.state.emails(), self.xsrf_form_html(), error))
            self.set_cookie(SESSION_COOKIE, session, path="/", httponly=True, samesite="Lax")
            return self.redirect(self.request.path, status=303)
        token = self.state.session_token(self.get_cookie(SESSION_COOKIE))
        if token is None:  # signed out meanwhile: back to the sign-in form
            return self.redirect(self.request.path, status=303)
        if action == "authorize":
            return self._authorize(app, challenge, token)
        if action == "deny":
            return self._found(f"{app.redirect_url}?denied=true")
        raise HTTPError(400, reason="Unknown action")

    def _authorize(self, app: App, challenge: str, token: Token) -> None:
        # What the real frontend does on "Authorize": GET /auth/accesscode with the user's web token.
        self._found(self.state.grant_code(app.id, challenge, token.value))

    def _unknown_app(self) -> None:
        self._html(404, error_page("App not found", "This server has no app with that id: check the link."))


class _Settings(_Speckle):
    """Developer settings, where the panel's "Create a token" link leads: sign in, then make a personal access
    token (the real frontend's /settings does the same with its own pages)."""

    route = "/settings"

    def get(self) -> None:
        token = self.state.session_token(self.get_cookie(SESSION_COOKIE))
        if token is None:
            return self._html(200, sign_in_page(None, self.state.emails(), self.xsrf_form_html()))
        self._html(200, tokens_page(self.state.user(token.user_id), self.xsrf_form_html()))

    def post(self) -> None:
        self.check_xsrf_cookie()
        if self.get_body_argument("action", "") == "signin":
            session = self.state.sign_in(self.get_body_argument("email", ""), self.get_body_argument("password", ""))
            if session is None:
                return self._html(401, sign_in_page(None, self.state.emails(), self.xsrf_form_html(),
                                                    "Wrong email or password."))
            self.set_cookie(SESSION_COOKIE, session, path="/", httponly=True, samesite="Lax")
            return self.redirect(self.request.path, status=303)
        token = self.state.session_token(self.get_cookie(SESSION_COOKIE))
        if token is None:
            return self.redirect(self.request.path, status=303)
        user = self.state.user(token.user_id)
        scopes = self.get_body_arguments("scopes")
        try:
            made = self.state.create_personal_token(token, self.get_body_argument("name", "") or "token", scopes, None)
        except TokenCreateError as err:
            return self._html(400, tokens_page(user, self.xsrf_form_html(), error=str(err)))
        self.set_header("Cache-Control", "no-store")
        self._html(200, tokens_page(user, self.xsrf_form_html(), made=made))


class _Home(_Speckle):
    """The server's root page: who is signed in in this browser, and Sign out."""

    route = "/"

    def get(self) -> None:
        token = self.state.session_token(self.get_cookie(SESSION_COOKIE))
        self._html(200, home_page(self.state.user(token.user_id) if token else None, self.xsrf_form_html()))

    def post(self) -> None:
        self.check_xsrf_cookie()
        if self.get_body_argument("action", "") == "signout":
            self.state.sign_out(self.get_cookie(SESSION_COOKIE))
            self.clear_cookie(SESSION_COOKIE, path="/")
        self.redirect("/", status=303)


class _NotFound(_Speckle):
    def _missing(self, *_args: str) -> None:
        raise HTTPError(404)

    get = post = put = patch = delete = head = _missing


class _Control(_Base):
    """Test hooks for an emulator in another process: no faults, no Speckle token check, no CORS; each call
    carries `Authorization: Bearer <control_token>` (from the credentials)."""

    def set_default_headers(self) -> None:
        """No Access-Control-Allow-Origin: a browser shows another site nothing of these answers."""

    def options(self, *_args: str) -> None:
        raise HTTPError(405, reason="The emulator's control API answers no preflight")

    def prepare(self) -> None:
        header = self.request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), self.control_token.encode()):
            message = "Send the emulator's control token (control_token in its credentials) as a bearer token."
            self._send(403, message.encode(), "text/plain; charset=utf-8")

    def _spec(self) -> dict[str, Any]:
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        fields = self._fields() if content_type == "application/json" else None
        if not fields:
            raise HTTPError(400, reason="Send a JSON object")
        return fields


def _sso_expired(workspace: str) -> bytes:
    """Speckle's answer to a workspace request after the user's SSO session for it lapsed."""
    error = {"message": workspace, "extensions": {"code": "SSO_SESSION_MISSING_OR_EXPIRED_ERROR",
                                                  "workspaceSlug": workspace, "statusCode": 401}}
    return json.dumps({"errors": [error], "data": None}).encode()


class _Faults(_Control):
    route = "/__emulator__/faults"

    def post(self) -> None:
        spec = self._spec()
        try:
            self.traffic.inject(
                str(spec.get("route", "")),
                str(spec.get("kind", "")),
                count=spec.get("count", 1),
                delay=float(spec.get("delay", 2.0)),
                status=int(spec.get("status", 502)),
                after=spec.get("after", 0),
                workspace=str(spec.get("workspace", "acme")),
            )
        except (TypeError, ValueError) as err:
            raise HTTPError(400, reason=str(err)) from None
        self.set_status(204)

    def delete(self) -> None:
        self.traffic.clear()
        self.set_status(204)


class _Clock(_Control):
    route = "/__emulator__/clock"

    def post(self) -> None:
        advance = self._spec().get("advance")
        if isinstance(advance, bool) or not isinstance(advance, (int, float)):
            raise HTTPError(400, reason="Send {\"advance\": seconds}")
        self.state.advance_clock(advance)
        self.set_status(204)


def _log_request(handler: RequestHandler) -> None:
    route = getattr(handler, "route", _Base.route)
    took = 1000.0 * handler.request.request_time()
    _log.debug("%d %s %s %.1fms", handler.get_status(), handler.request.method, route, took)


def make_app(state: State, traffic: Traffic, control_token: str) -> Application:
    deps = {"state": state, "traffic": traffic, "control_token": control_token}
    handlers: list[type[_Base]] = [_Home, _AccessCode, _Token, _Logout, _GraphQL, _Settings, _Faults, _Clock]
    routes: list[Any] = [(handler.route, handler, deps) for handler in handlers]
    routes.append((r"/authn/verify/([^/]+)/([^/]+)", _Verify, deps))
    return Application(
        routes, default_handler_class=_NotFound, default_handler_args=deps, log_function=_log_request
    )
