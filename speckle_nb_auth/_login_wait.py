"""How `login()` waits in its cell until someone signed in, so the next cell of a Run All finds `speckle`.

With a link to the server extension (`_link_logins`), the kernel hears the panel while the cell runs: it waits
for the panel's sign-in (`wait_for_panel`). Without one (VS Code, PyCharm, Colab, a Jupyter without the
extension), the panel's messages reach the kernel only after the cell, so the kernel starts its own public-app
sign-in before it waits (`wait_in_cell`): the panel links to its address (text for frontends without widgets),
and the answer comes to the kernel's loopback listener, or, where the browser cannot reach this machine (Colab,
`paste=True`, a taken port), as the address pasted at a stdin prompt. Paste mode listens nowhere, so the prompt is
the only way that sign-in can finish and no prompt is left hanging; listening mode asks nothing on stdin.
Where nobody can answer (no view with a link; no stdin without one: nbclient, nbconvert) it stops at once.
"""

from __future__ import annotations

import getpass
import os
import secrets
import sys
import time
from typing import TYPE_CHECKING, Any

from ._errors import LoginDenied, NotSignedIn, SpeckleAuthError
from ._interrupts import SLICE
from ._receiver import PasteNotUnderstood

if TYPE_CHECKING:
    from ._kernel_login import KernelLogin, KernelSignIn
    from ._session import Session
    from .panel import LoginPanel

__all__ = ["LoginNotFinished", "nobody_there", "not_signed_in", "wait_for_panel", "wait_in_cell"]

_TERMINAL_LOGIN = "python -m speckle_nb_auth login"
REGISTERED_APP_NOTE = (
    "SPECKLE_APP_ID names a registered Speckle app, whose sign-in runs only in Jupyter's server extension (its "
    "secret lives there), and no extension answers here: signing in with Speckle's public connector app instead."
)


class LoginNotFinished(NotSignedIn):
    """`login()` stopped waiting. IPython shows it as its one line, not as a traceback: it stops a Run All
    with the reason and what to do."""

    def _render_traceback_(self) -> list[str]:
        return [f"NotSignedIn: {self.message}"]


def not_signed_in(outcome: str, timeout: float, detail: str = "") -> LoginNotFinished:
    again = "run this cell again to sign in."
    texts = {
        "cancelled": f"Sign-in cancelled: {again}",
        "timeout": f"Nobody signed in within {_duration(timeout)}: {again}",
        "interrupted": f"Sign-in stopped: the kernel was interrupted. To sign in, {again}",
        "nothing_pasted": f"No sign-in address was pasted: {again}",
        "no_view": "No login panel was shown to sign in with (no browser displays this notebook's widgets): set "
                   f"SPECKLE_TOKEN, or run `{_TERMINAL_LOGIN}` in a terminal, then run this again.",
        "nobody": "Nobody can sign in here (this notebook runs with nobody to answer, as under nbconvert or "
                  f"nbclient): set SPECKLE_TOKEN, or run `{_TERMINAL_LOGIN}` in a terminal, then run this again.",
    }
    text = texts.get(outcome) or f"{detail or 'The sign-in did not finish.'} To sign in, {again}"
    return LoginNotFinished(text, reason=outcome)


def wait_for_panel(session: Session, view: LoginPanel, timeout: float, view_timeout: float, *, cancels: int) -> str:
    """Block until signed in ("signed_in"), cancelled since the count was `cancels` ("cancelled"), `timeout`
    passed ("timeout"), or no view of `view` said it is shown within `view_timeout` ("no_view"). The count is
    taken before the panel exists: a Cancel can come through the mailbox before the wait begins."""
    start = time.monotonic()
    with session.lock:
        while True:
            if session.client is not None:
                return "signed_in"
            if session.cancels != cancels:
                return "cancelled"
            waited = time.monotonic() - start
            if waited >= timeout:
                return "timeout"
            if not session.seen(view):
                if waited >= view_timeout:
                    return "no_view"
                session.changed.wait(min(view_timeout - waited, SLICE))
            else:
                session.changed.wait(min(timeout - waited, SLICE))


def nobody_there(shell: Any) -> bool:
    """Whether the cell runs with nobody to answer: nbclient, nbconvert and papermill allow no stdin."""
    return not getattr(getattr(shell, "kernel", None), "_allow_stdin", True)


def wait_in_cell(panel: LoginPanel, shell: Any, kernel_login: KernelLogin, server: str, timeout: float,
                 *, paste: bool | None) -> None:
    """Sign in with the kernel's own sign-in inside the running cell; returns once signed in, else raises
    `LoginNotFinished` (one line)."""
    if nobody_there(shell):
        panel.show()  # nbclient and nbconvert allow no stdin: nobody is there to open a link either
        raise not_signed_in("nobody", timeout)
    notes = [REGISTERED_APP_NOTE] if os.environ.get("SPECKLE_APP_ID") else []
    wants_paste = "google.colab" in sys.modules if paste is None else paste
    try:
        pending = kernel_login.begin(panel, secrets.token_urlsafe(18), server, panel.wanted, listen=not wants_paste)
    except SpeckleAuthError as err:
        panel.say(error=err.message)
        panel.show()
        raise not_signed_in("failed", timeout, err.message) from None
    if pending.busy_port:
        notes.append(pending.busy_port)
    pasting = pending.receiver is None
    display_id = secrets.token_hex(8)
    outcome = "failed"
    try:  # an interrupt from here on, even before the wait, closes the listener
        panel.wait_for_sign_in(pending.authorize_url, paste=pasting,
                               until=0.0 if pasting else time.time() + timeout, message=" ".join(notes))
        panel.show(display_id)
        outcome = _prompt(kernel_login, pending) if pasting else _listen(panel.session, pending, timeout)
    except KeyboardInterrupt:
        outcome = "interrupted"
    finally:
        if outcome != "signed_in":
            kernel_login.stop(cancelled=True)
        panel.wait_for_sign_in("")
        panel.redisplay(display_id)  # the text a frontend without widgets shows no longer holds the address
    if outcome != "signed_in":
        raise not_signed_in(outcome, timeout, pending.ended or "")


def _listen(session: Session, pending: KernelSignIn, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    with session.lock:
        while True:
            if session.client is not None:
                return "signed_in"
            if pending.ended is not None:
                return "failed"
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            session.changed.wait(min(left, SLICE))


def _prompt(kernel_login: KernelLogin, pending: KernelSignIn) -> str:
    """Ask on stdin (hidden: the address holds the code) until an address is understood, three times at most."""
    for _ in range(3):
        try:
            text = getpass.getpass("Paste the address the sign-in tab ended on (empty to stop): ")
        except EOFError:
            return "nothing_pasted"
        if not text.strip():
            return "nothing_pasted"
        try:
            code = pending.login.code_from(text)
        except PasteNotUnderstood as err:
            print(err.message, flush=True)
            continue
        except LoginDenied as err:
            pending.ended = err.message
            return "failed"
        kernel_login.finish_with(pending, code)
        return "signed_in" if kernel_login.session.client is not None else "failed"
    return "nothing_pasted"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes >= 1:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{round(seconds)} second{'s' if round(seconds) != 1 else ''}"
