"""Workspace SSO: Speckle's answer when a workspace with single sign-on refuses a valid token because the user's
SSO session for it lapsed (`SsoSessionMissingOrExpiredError` in the server's workspaces module: code
`SSO_SESSION_MISSING_OR_EXPIRED_ERROR`, status 401). The session is renewed in a browser at the workspace's
`/api/v1/workspaces/<slug>/sso/auth`; renewing the token does nothing for it.
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import SsoSessionExpired

__all__ = ["SSO_EXPIRED", "check_sso"]

SSO_EXPIRED = "SSO_SESSION_MISSING_OR_EXPIRED_ERROR"
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def check_sso(server: str, payload: Any) -> None:
    """A workspace's SSO session that lapsed (HTTP 401, or 200 with the error): its own typed error, since
    renewing the token is pointless. The workspace's slug is in the error's `workspaceSlug`, or, on older
    servers, its message."""
    errors = payload.get("errors") if isinstance(payload, dict) else None
    for error in errors if isinstance(errors, list) else []:
        ext = error.get("extensions") if isinstance(error, dict) else None
        if not isinstance(ext, dict) or ext.get("code") != SSO_EXPIRED:
            continue
        named = [ext.get("workspaceSlug"), error.get("message")]
        slug = next((n for n in named if isinstance(n, str) and _SLUG.fullmatch(n)), "")
        renew = f"{server}/api/v1/workspaces/{slug}/sso/auth" if slug else f"{server}/workspaces"
        which = f"the workspace '{slug}'" if slug else "a workspace"
        raise SsoSessionExpired(
            f"Your single sign-on session for {which} on {server} has ended (workspaces with SSO ask you to "
            f"sign in again, by default every week). Sign in to it in a browser at {renew}, then run this "
            "again. Your Speckle token is still valid: logging in again here does not help.",
            workspace=slug, renew_url=renew,
        )
