"""Who listens on a loopback port of this machine, so a sign-in's answer is never sent to another user's program.

Speckle sends the browser, and with it the access code, to the connector app's fixed loopback port. Any user of
the machine can listen there. A port held by the same user is Speckle's desktop service or another login of
theirs (paste-back works); one held by another user would receive the code, so nothing may be opened then.

Linux names the owner of every socket in `/proc/net/tcp` and `/proc/net/tcp6`. Elsewhere (macOS, Windows) the
owner cannot be read without privileges, so a taken port is treated as the user's own, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import SpeckleAuthError
from ._protocol import is_loopback_host

__all__ = [
    "PortHeldByAnother",
    "check_port_not_held_by_another",
    "check_redirect_not_held_by_another",
    "listener_uids",
]

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"  # the kernel's TCP_LISTEN state, in hex


class PortHeldByAnother(SpeckleAuthError):
    code = "port_held_by_another_user"


def listener_uids(port: int, tables: tuple[Path, ...] = _TABLES) -> set[int]:
    """The uids of the sockets listening on `port` (any address); empty where none is known."""
    uids: set[int] = set()
    for table in tables:
        try:
            lines = table.read_text(encoding="ascii", errors="replace").splitlines()[1:]
        except OSError:  # not Linux, or no IPv6
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 8 or fields[3] != _LISTEN:
                continue
            try:
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    uids.add(int(fields[7]))
            except (IndexError, ValueError):
                continue
    return uids


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name}, uid {uid}"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_port_not_held_by_another(port: int) -> None:
    """Raise `PortHeldByAnother` when a user other than this process's listens on `port` of this machine."""
    others = sorted(uid for uid in listener_uids(port) if uid != os.geteuid())
    if not others:
        return
    raise PortHeldByAnother(
        f"Port {port} of this machine, where Speckle sends the sign-in's answer, is held by another user of this "
        f"machine ({_user_name(others[0])}). Signing in now would hand your sign-in to their program, so nothing "
        "was opened. Ask them or an administrator to stop that program, or sign in with a personal access token "
        "instead."
    )


def check_redirect_not_held_by_another(redirect_url: str) -> None:
    """`check_port_not_held_by_another` for a loopback redirect URL (other addresses are not this machine's)."""
    parts = urlsplit(redirect_url)
    try:
        port = parts.port or 80
    except ValueError:
        return
    if parts.scheme == "http" and is_loopback_host((parts.hostname or "").lower()):
        check_port_not_held_by_another(port)
