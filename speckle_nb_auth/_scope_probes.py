"""Whether a token holds a scope, where its scopes cannot be listed: ask the server a harmless question it
answers only under that scope.

A personal access token's scopes are readable only with `tokens:read`, and an app token's only from its app.
Where neither works, the scopes a notebook asks for must still not pass on "unknown". Each probe here reads
nothing but a count or the user's own address; a scope with no such question is reported unchecked, never
passed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._errors import MissingScope, SpeckleAuthError

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["PROBES", "probe_scopes"]


def _answered(data: dict[str, Any]) -> bool:
    return True


def _has_email(data: dict[str, Any]) -> bool:
    # Speckle answers a token without profile:email with a null address rather than an error.
    return bool((data.get("activeUser") or {}).get("email"))


# scope -> (query, whether its answer shows the scope held); a refusal (FORBIDDEN) shows it is not
PROBES: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "profile:read": ("{ activeUser { id } }", _answered),
    "profile:email": ("{ activeUser { email } }", _has_email),
    "streams:read": ("{ activeUser { projects(limit: 1) { totalCount } } }", _answered),
    "tokens:read": ("{ activeUser { apiTokens { id } } }", _answered),
}


def probe_scopes(client: Client, scopes: Iterable[str]) -> dict[str, bool | None]:
    """Each scope -> True (the server answered under it), False (it refused), None (no question checks it,
    or the server's answer said neither). Answers are kept on the client: a token's scopes do not change."""
    results: dict[str, bool | None] = {}
    for scope in scopes:
        if scope not in client.probed_scopes:
            client.probed_scopes[scope] = _probe(client, scope)
        results[scope] = client.probed_scopes[scope]
    return results


def _probe(client: Client, scope: str) -> bool | None:
    probe = PROBES.get(scope)
    if probe is None:
        return None
    query, shows = probe
    try:
        return shows(client.graphql(query))
    except MissingScope:
        return False
    except SpeckleAuthError:
        return None
