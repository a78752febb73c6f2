"""The small HTML pages a login tab shows, and the headers that make them safe to show a result on.

Every page is one document with one inline script, allowed by a fresh nonce under a CSP that allows
nothing else. The script tells the panel the flow's status over a same-origin `BroadcastChannel` (the panel
also polls, so nothing depends on it) and closes the tab after a success. Every value shown is escaped.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from .._html import document, new_nonce, page_headers
from ._flows import Flow

__all__ = [
    "CHANNEL",
    "PAGE_CSP",
    "RETRY",
    "Page",
    "error_status",
    "flow_page",
    "new_nonce",
    "page_headers",
    "problem_page",
    "render",
    "success",
]

CHANNEL = "speckle-nb-auth"
RETRY = "Go back to the notebook and click \u201cLog in with Speckle\u201d again."
# For responses of the login routes that carry no page of ours (redirects, Jupyter's own error pages).
PAGE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

# Typed-error codes (`_errors`) that mean Speckle could not be reached or answered wrongly, or that this
# server is set up wrongly; every other code is Speckle refusing what was sent.
_UPSTREAM_CODES = {"unreachable", "server_error", "graphql"}
_CONFIG_CODES = {"configuration", "invalid_server_url"}


def error_status(code: str) -> int:
    """The HTTP status for a typed error's code."""
    if code in _UPSTREAM_CODES:
        return 502
    if code in _CONFIG_CODES:
        return 500
    return 400


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    message: str
    flow_id: str | None = None
    flow_status: str | None = None  # told to the panel when set


def success(flow_id: str, account: str, server_url: str) -> Page:
    # Named always: Speckle sends no `state`, so a sign-in someone else's page completed with their own code
    # shows here as an account that is not yours (see docs/design-notes.md, "Cross-site callbacks").
    who = f" as {account}" if account else ""
    return Page(
        200,
        "Signed in to Speckle",
        f"You are signed in to {server_url}{who}. You can close this tab and go back to the notebook. Not your "
        "account? Speckle signs in as whoever is signed in to it in this browser: sign out of Speckle here "
        f"({server_url}, your avatar, Sign out), then log out in the notebook's login panel and log in again.",
        flow_id,
        "done",
    )


def flow_page(flow: Flow | None) -> Page:
    """The result page for the flow this browser's cookie names."""
    if flow is None:
        return Page(
            400,
            "No login in progress",
            "This browser has no Speckle login waiting on this Jupyter server: it may have expired, or "
            "been started in another browser or by another user.",
        )
    if flow.status == "done":
        return success(flow.id, flow.account, flow.server_url)
    titles = {
        "denied": (403, "Login cancelled"),
        "expired": (410, "Login expired"),
        "superseded": (409, "Login replaced"),
        "failed": (error_status(flow.error_code), "Login failed"),
    }
    if flow.status in titles:
        status, title = titles[flow.status]
        return Page(status, title, flow.message, flow.id, flow.status)
    return Page(
        409, "Login not finished", "This login is still waiting for Speckle: finish signing in there first."
    )


def problem_page(problem: str) -> Page | None:
    """The page for a callback that changed no flow (`_logins.CallbackProblem`); None for any other value."""
    if problem == "used":
        return Page(
            409,
            "Login already completed",
            "This sign-in was already completed or cancelled: a login goes through once only.",
        )
    if problem == "no_code":
        return Page(400, "Login incomplete", "Speckle sent this tab back without a sign-in code.")
    return None


def render(page: Page, nonce: str) -> str:
    hint = "" if page.status < 400 else f"<p>{html.escape(RETRY)}</p>"
    script = ""
    if page.flow_id and page.flow_status:
        message = {"type": "speckle-auth", "flow": page.flow_id, "status": page.flow_status}
        if page.flow_status != "done":  # a login refused before its flow existed leaves the panel nothing to poll
            message["message"] = page.message
        script = _SCRIPT.format(
            nonce=nonce,
            channel=_js(CHANNEL),
            message=_js(message),
            close="true" if page.flow_status == "done" else "false",
        )
    return document(nonce, page.title, page.message, after=hint, script=script)


def _js(value: object) -> str:
    """JSON that is safe inside an inline script: no '<', '>' or '&' that could end it early."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_SCRIPT = """<script nonce="{nonce}">
(function () {{
  try {{
    var channel = new BroadcastChannel({channel});
    channel.postMessage({message});
    channel.close();
  }} catch (err) {{ /* the panel also polls the flow */ }}
  if ({close}) {{ setTimeout(function () {{ window.close(); }}, 200); }}
}})();
</script>"""
