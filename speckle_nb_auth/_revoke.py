"""Revoking a token that may have leaked, in one step, and what to do next.

`/auth/logout` takes the token itself and needs no authentication, so any token can be revoked by whoever holds
it: a personal access token, an app token, one found in a commit. Afterwards the server answers it with 403.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import httpx

from . import _credentials as credentials
from . import _protocol as protocol
from ._errors import LogoutFailed, NotSignedIn
from ._secret import Secret
from ._transport import DEFAULT_TIMEOUT, call, ssl_context

__all__ = ["Revoked", "next_steps", "revoke"]


def next_steps(server: str) -> list[str]:
    return [
        f"Make a replacement at {server}/settings (Developer > Access tokens), with only the scopes the job needs.",
        "Update every application that used the old token (SPECKLE_TOKEN, .env files, CI secrets, notebooks) "
        "with the new one.",
        f"Review access: check your projects' recent activity and the applications authorized at "
        f"{server}/settings. A token that was committed stays in git history: removing the file does not "
        "unleak it.",
    ]


@dataclass(frozen=True)
class Revoked:
    """What `revoke` did: the server no longer accepts the token. Prints as the next steps."""

    server: str

    @property
    def steps(self) -> list[str]:
        return next_steps(self.server)

    def __str__(self) -> str:
        lines = [f"Revoked: {self.server} no longer accepts this token. Next:"]
        lines += [f"  {n}. {step}" for n, step in enumerate(self.steps, 1)]
        return "\n".join(lines)

    __repr__ = __str__


@dataclass(frozen=True)
class Given:
    """A token as given: alone, or with the server a `.env` file named for it."""

    token: str = field(repr=False)
    server: str | None = None


def read_given(text: str) -> Given:
    """The token in what was pasted or piped: the token alone (blanks and a `Bearer ` prefix dropped), or a
    `.env` file's `SPECKLE_TOKEN` (with its `SPECKLE_SERVER`, if any)."""
    text = Secret(text if isinstance(text, str) else "")  # what each frame shows of it, verbose tracebacks too
    raw = Secret(text.strip())
    if "=" in raw:
        token, server = _from_dotenv_text(raw)
        if not token:
            raise NotSignedIn("That text sets no SPECKLE_TOKEN: give the token itself, or a .env file that sets it.")
        return Given(token, server or None)
    if raw[:7].lower() == "bearer ":
        raw = Secret(raw[7:].strip())
    if not raw:
        raise NotSignedIn("No token was given: pass the token to revoke (on standard input for the command line).")
    if any(ch.isspace() for ch in raw):
        raise NotSignedIn("That is more than one token: give one token, on a line of its own.")
    return Given(raw)


def _from_dotenv_text(raw: str) -> tuple[Secret, str]:
    """(SPECKLE_TOKEN, SPECKLE_SERVER) of a .env file's text; the parsed values never stay in a frame."""
    from dotenv import dotenv_values

    values = dotenv_values(stream=io.StringIO(raw), interpolate=False)
    return Secret((values.pop("SPECKLE_TOKEN", None) or "").strip()), (values.get("SPECKLE_SERVER") or "").strip()


def revoke(token: str, server: str | None = None) -> Revoked:
    """Tell `server` to stop accepting `token` now, and forget any remembered sign-in that holds it. `token`
    may also be a `.env` file's text: its `SPECKLE_TOKEN` is revoked, on its `SPECKLE_SERVER` unless `server`
    is given. The default server is `SPECKLE_SERVER`, else app.speckle.systems. Raises `LogoutFailed` when
    the server does not know the token (already revoked, or it belongs to another server),
    `SpeckleUnreachable` when it cannot be reached."""
    from ._sources import default_server  # the sources import the client: load them only when revoking

    token = Secret(token if isinstance(token, str) else "")  # a traceback through here shows it masked
    given = read_given(token)
    value, named = Secret(given.token), server or given.server
    url = protocol.normalize_server_url(named) if named else default_server()
    with httpx.Client(timeout=DEFAULT_TIMEOUT, verify=ssl_context()) as http:
        try:
            call(http, protocol.logout(url, value))
        except LogoutFailed:
            raise LogoutFailed(
                f"{url} does not know this token: it was already revoked, or it belongs to another Speckle "
                "server (then revoke it there: --server URL, or server=)."
            ) from None
    for user_id, pair in credentials.recall(url):
        if pair.token == value:
            credentials.forget(url, user_id)
    return Revoked(url)
