"""One session per IPython shell, made on first use with its parts: the link to the Jupyter server where the
extension answers there (then the kernel renews through it), else a renewal through a browser view; and the
kernel's own public-app sign-in either way; and the status comm of the JupyterLab extension. The only place
that knows every part.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from ._browser_renewal import BrowserRenewal
from ._frontend_status import FrontendStatus
from ._jupyter_link import JupyterLink, find_link
from ._kernel_login import KernelLogin
from ._link_logins import LinkLogins
from ._session import Session

__all__ = ["Parts", "parts_of", "session_for"]


@dataclass(frozen=True)
class Parts:
    """What a panel uses beside the session's state."""

    link: LinkLogins | None
    kernel_login: KernelLogin
    renewal: BrowserRenewal

    @property
    def mailbox(self) -> str:
        return self.link.mailbox if self.link is not None else ""


_sessions: weakref.WeakKeyDictionary[Any, Session] = weakref.WeakKeyDictionary()
_parts: weakref.WeakKeyDictionary[Session, Parts] = weakref.WeakKeyDictionary()
_no_shell: list[Session] = []
_lock = threading.Lock()


def session_for(shell: Any) -> Session:
    """The session of `shell` (IPython's), made on first use: it looks for its Jupyter server (up to 5 s)."""
    with _lock:
        if shell is None:
            if not _no_shell:
                made = Session(None)
                _assemble(made, find_link())
                _no_shell.append(made)
            return _no_shell[0]
        session = _sessions.get(shell)
        if session is None:
            session = Session(shell)
            _assemble(session, find_link())
            _sessions[shell] = session  # only once whole: a failure leaves nothing half made behind
        return session


def parts_of(session: Session) -> Parts:
    """The parts `session_for` made with `session` (none for a session made by hand: no link)."""
    with _lock:
        parts = _parts.get(session)
        return parts if parts is not None else _assemble(session, None)


def _assemble(session: Session, link: JupyterLink | None) -> Parts:
    """Make `session`'s parts, with `link` to its Jupyter server (its mailbox collected from now on) or none."""
    linked = LinkLogins(session, link).start() if link is not None else None
    parts = Parts(linked, KernelLogin(session), BrowserRenewal(session))
    session.parts = [p for p in (linked, parts.kernel_login, parts.renewal) if p is not None]
    session.renewer = linked.renew if linked is not None else parts.renewal.renew
    _parts[session] = parts
    FrontendStatus(session).start()
    return parts
