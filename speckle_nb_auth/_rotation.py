"""How old a personal access token is, when it expires, and when to rotate it.

Speckle lists a user's personal access tokens (`activeUser { apiTokens { id createdAt lifespan lastUsed } }`,
which needs `tokens:read`); a token is found there by its first 10 characters. App tokens (a "Log in with
Speckle" sign-in) are not listed: they have no age to show. A token's lifespan counts from its creation, so it
expires at `createdAt + lifespan`.

"Now" is the later of this machine's clock and the token's `lastUsed`, which the server sets to its own time
when it accepts the query: a machine whose clock is behind still sees the age the server sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ._errors import SpeckleAuthError

if TYPE_CHECKING:
    from ._client import Client

__all__ = [
    "DEFAULT_MAX_AGE_DAYS",
    "EXPIRY_WARNING_DAYS",
    "MAX_AGE_ENV",
    "TokenAge",
    "reminder_age_days",
    "rotation_message",
    "rotation_notice",
    "token_age",
]

DEFAULT_MAX_AGE_DAYS = 90
EXPIRY_WARNING_DAYS = 14
MAX_AGE_ENV = "SPECKLE_TOKEN_MAX_AGE_DAYS"  # overrides the 90 days where no argument is given
_NEVER = timedelta(days=50 * 365)  # Speckle's "no expiry" is a ~100-year lifespan
_QUERY = "query SpeckleNbAuthTokenAges { activeUser { apiTokens { id createdAt lifespan lastUsed } } }"


@dataclass(frozen=True)
class TokenAge:
    created_at: datetime
    last_used: datetime
    lifespan: timedelta
    now: datetime

    @property
    def age(self) -> timedelta:
        return max(self.now - self.created_at, timedelta(0))

    @property
    def expires_at(self) -> datetime | None:
        """None for a token that practically never expires."""
        return None if self.lifespan >= _NEVER else self.created_at + self.lifespan

    def describe(self) -> str:
        """One line for people, such as "created 2026-08-23 (100 days ago), never expires"."""
        made = f"created {self.created_at:%Y-%m-%d} ({_days(self.age)} ago)"
        if self.expires_at is None:
            return f"{made}, never expires"
        left = self.expires_at - self.now
        when = f"in {_days(left)}" if left > timedelta(0) else "already"
        return f"{made}, expires {self.expires_at:%Y-%m-%d} ({when})"


def _days(span: timedelta) -> str:
    days = max(span.days, 0)
    return "1 day" if days == 1 else f"{days} days"


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def token_age(client: Client) -> TokenAge | None:
    """The age and expiry of the client's personal access token; None for an app token, for a token without
    `tokens:read`, or when Speckle cannot be asked (never raises a Speckle error)."""
    try:
        data = client.graphql(_QUERY)
    except SpeckleAuthError:
        return None
    user = data.get("activeUser") or {}
    token_id = client.token_pair.token[:10]
    for entry in user.get("apiTokens") or []:
        if not isinstance(entry, dict) or entry.get("id") != token_id:
            continue
        created, used = _moment(entry.get("createdAt")), _moment(entry.get("lastUsed"))
        try:
            lifespan = timedelta(milliseconds=int(entry.get("lifespan")))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            return None
        if created is None or used is None:
            return None
        return TokenAge(created, used, lifespan, max(datetime.now(timezone.utc), used))
    return None


def reminder_age_days(value: int | None = None) -> int:
    """The age after which to remind: `value`, else `SPECKLE_TOKEN_MAX_AGE_DAYS`, else 90."""
    if value is not None:
        return value
    try:
        return max(int(os.environ.get(MAX_AGE_ENV, "")), 1)
    except ValueError:
        return DEFAULT_MAX_AGE_DAYS


def rotation_message(
    age: TokenAge, server: str, *, max_age: int | None = None, expiry_days: int = EXPIRY_WARNING_DAYS
) -> str | None:
    """The reminder for a token of this age, or None when it needs none."""
    steps = (
        f"Make a new personal access token at {server}/settings, sign in with it, then revoke the old one "
        "(python -m speckle_nb_auth revoke)."
    )
    limit = reminder_age_days(max_age)
    expires = age.expires_at
    if expires is not None and expires - age.now <= timedelta(days=expiry_days):
        left = expires - age.now
        when = f"expires in {_days(left)}" if left > timedelta(0) else "has expired"
        return f"This personal access token {when} ({expires:%Y-%m-%d}). {steps}"
    if age.age > timedelta(days=limit):
        return f"This personal access token is {_days(age.age)} old (more than {limit}): time to rotate it. {steps}"
    return None


def rotation_notice(
    client: Client, *, max_age_days: int | None = None, expiry_days: int = EXPIRY_WARNING_DAYS
) -> str | None:
    """A reminder to rotate the client's personal access token when it is older than `max_age_days`
    (default 90, or `SPECKLE_TOKEN_MAX_AGE_DAYS`) or expires within `expiry_days`; None otherwise, and
    whenever the token's age cannot be read."""
    age = token_age(client)
    if age is None:
        return None
    return rotation_message(age, client.url, max_age=max_age_days, expiry_days=expiry_days)
