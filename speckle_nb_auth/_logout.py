"""Logging out from a panel: the token is revoked or kept depending on whose it is.

A token a sign-in made here (an app's pair) is the package's to revoke. A token the person brought (a pasted
personal access token, SPECKLE_TOKEN, a `.env` line, a desktop account) may serve their scripts, CI or desktop
apps too: Log out forgets it in this notebook only, and for a pasted one offers "Also revoke it on Speckle".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from . import _protocol as protocol
from ._errors import LogoutFailed, SpeckleAuthError
from ._transport import DEFAULT_TIMEOUT, call, ssl_context

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["log_out", "revoke_kept"]

_SHARED = ("desktop", "environment", "dotenv", "hub")  # belong to what set them up, never revoked from a panel


def log_out(session: Session) -> str | None:
    """Log out from a panel; returns an error for people, or None."""
    with session.lock:
        client, source = session.client, session.source
        if client is None:
            session.broadcast("Not signed in.")
            return None
        keep = not client.made_here or source in _SHARED
        problem = None
        try:
            client.logout(revoke=not keep)
        except SpeckleAuthError:
            problem = (f"Logged out here, but {client.url} could not be reached to revoke the token: revoke it "
                       f"yourself at {client.url}/settings (Developer settings, Access tokens).")
        session.kept = (client.url, client.token_pair) if keep and source not in _SHARED else None
        session._client_logged_out(client, quiet=True)  # noqa: SLF001 - the session's own bookkeeping
    if problem:
        session.broadcast("Logged out.")
        return problem
    session.broadcast({
        "desktop": "Logged out in this notebook; the desktop account stays signed in for Speckle's desktop apps.",
        "environment": "Logged out in this notebook. SPECKLE_TOKEN was not revoked (it may serve other jobs); "
                       "unset it to stop signing in with it, or revoke it in Speckle's settings.",
        "dotenv": "Logged out in this notebook. The .env file's token was not revoked (it may serve other "
                  "jobs); remove it from the file to stop signing in with it.",
        "hub": "Logged out in this notebook. Your hub login still holds its Speckle sign-in (other kernels use "
               "it); log out of the hub to end it.",
    }.get(source, "Logged out in this notebook. The token you brought was not revoked: it still works wherever "
                  "else you use it (scripts, CI). \u201cAlso revoke it on Speckle\u201d ends it everywhere."
          if keep else "Logged out: the token was revoked and forgotten. To sign in as someone else, sign out of "
                       "Speckle in this browser first (Use another account)."))
    return None


def revoke_kept(session: Session) -> str | None:
    """"Also revoke it on Speckle" after Log out kept a token the person brought; an error for people, or None."""
    with session.lock:
        kept, session.kept = session.kept, None
    if kept is None:
        return "No token from this notebook waits to be revoked: revoke one at your server's settings page."
    server, pair = kept
    try:
        with httpx.Client(timeout=DEFAULT_TIMEOUT, verify=ssl_context()) as http:
            call(http, protocol.logout(server, pair.token))
    except LogoutFailed:
        pass  # the server no longer knows it: revoked already
    except SpeckleAuthError as err:
        with session.lock:
            session.kept = kept
        return f"The token could not be revoked: {err.message}"
    session.broadcast("Revoked on Speckle: that token no longer works anywhere. Make a new one where a script "
                      "or CI job needs it.")
    return None
