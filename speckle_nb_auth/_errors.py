"""Every failure a user can meet, as a typed exception whose message is safe to show and says what to do.

    SpeckleAuthError                 base: `code` (stable, for programs) and a message (for people)
    ├── ConfigurationError           this package or the server extension is set up wrongly
    │   └── InvalidServerURL         a server address that cannot be used (also a ValueError)
    ├── SpeckleUnreachable           the request failed: no connection, timeout, connection dropped
    ├── SpeckleServerError           the server answered, but not in a way Speckle answers (5xx, garbage)
    ├── SpeckleRefused               the server said no
    │   ├── InvalidToken             403 "Your token is not valid." (revoked, logged out, expired, mistyped)
    │   ├── MissingScope             a GraphQL FORBIDDEN error: the token lacks `scope`
    │   ├── AccessCodeRejected       the code exchange failed (used, expired, challenge or secret wrong, ...)
    │   ├── RefreshRejected          the refresh token was refused
    │   ├── LoginDenied              the user pressed Deny on Speckle's consent page
    │   └── LogoutFailed             /auth/logout refused the token
    ├── GraphQLError                 any other GraphQL error in an answer
    └── NotSignedIn                  no credential was found; the message lists the ways to sign in

No message ever contains a token, refresh token, access code or app secret: messages are built from fixed text,
server URLs and the server's own error strings (which never echo a secret).
"""

from __future__ import annotations

__all__ = [
    "AccessCodeRejected",
    "ConfigurationError",
    "GraphQLError",
    "InvalidServerURL",
    "InvalidToken",
    "LoginDenied",
    "LogoutFailed",
    "MissingScope",
    "NotSignedIn",
    "RefreshRejected",
    "SpeckleAuthError",
    "SpeckleRefused",
    "SpeckleServerError",
    "SpeckleUnreachable",
    "SsoSessionExpired",
]


class SpeckleAuthError(Exception):
    """Base class. `code` is stable for programs; `str(err)` is a sentence for people."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(SpeckleAuthError):
    code = "configuration"


class InvalidServerURL(ConfigurationError, ValueError):
    code = "invalid_server_url"


class SpeckleUnreachable(SpeckleAuthError):
    code = "unreachable"


class SpeckleServerError(SpeckleAuthError):
    code = "server_error"


class SpeckleRefused(SpeckleAuthError):
    code = "refused"


class InvalidToken(SpeckleRefused):
    code = "invalid_token"


class MissingScope(SpeckleRefused):
    code = "missing_scope"

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


class SsoSessionExpired(SpeckleRefused):
    """A workspace with single sign-on refused a valid token: the user's SSO session for it has lapsed (Speckle
    asks again after a week by default). Renewing the token does not help; signing in to the workspace at
    `renew_url` in a browser does."""

    code = "sso_session_expired"

    def __init__(self, message: str, *, workspace: str, renew_url: str) -> None:
        super().__init__(message)
        self.workspace = workspace
        self.renew_url = renew_url


class AccessCodeRejected(SpeckleRefused):
    code = "access_code_rejected"


class RefreshRejected(SpeckleRefused):
    code = "refresh_rejected"


class LoginDenied(SpeckleRefused):
    code = "denied"


class LogoutFailed(SpeckleRefused):
    code = "logout_failed"


class GraphQLError(SpeckleAuthError):
    code = "graphql"

    def __init__(self, message: str, *, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class NotSignedIn(SpeckleAuthError):
    code = "not_signed_in"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # why the last credential tried failed, when one was tried
