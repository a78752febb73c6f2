"""The HTML of the emulator's web frontend: sign-in, consent and error pages.

Plain same-origin forms, no JavaScript. Browser tests drive them by stable text: inputs named `email` and
`password`, buttons "Sign in", "Authorize" and "Deny". Everything shown is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from ._state import ALL_SCOPES, App, User

__all__ = ["consent_page", "error_page", "sign_in_page", "tokens_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; }
h1 { font-size: 1.4rem; }
label { display: block; margin-top: 0.8rem; }
input { display: block; width: 100%; padding: 0.4rem; margin-top: 0.2rem; box-sizing: border-box; }
button { margin-top: 1rem; margin-right: 0.5rem; padding: 0.5rem 1.2rem; font-size: 1rem; cursor: pointer; }
.error { color: #b91c1c; }
.hint { color: #6b7280; font-size: 0.9rem; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · Speckle emulator</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>"
    )


def sign_in_page(app: App | None, emails: Iterable[str], xsrf_input: str, error: str | None = None) -> str:
    """`xsrf_input` is Tornado's ready-made hidden input (already escaped); `app` is None on the settings."""
    hint = ", ".join(escape(email) for email in emails)
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    wants = (f"<p><strong>{escape(app.name)}</strong> wants to use your Speckle account.</p>" if app
             else "<p>Sign in to make a personal access token.</p>")
    return _page(
        "Sign in",
        f"<h1>Sign in to Speckle</h1>"
        f"{wants}"
        f"{problem}"
        f'<form method="post">{xsrf_input}'
        f'<label for="email">Email</label>'
        f'<input id="email" name="email" type="email" autocomplete="username" required>'
        f'<label for="password">Password</label>'
        f'<input id="password" name="password" type="password" autocomplete="current-password" required>'
        f'<button type="submit" name="action" value="signin">Sign in</button>'
        f"</form>"
        f'<p class="hint">Seeded users: {hint} (their passwords are printed when the emulator starts, and kept '
        f"in its credentials).</p>",
    )


def consent_page(app: App, user: User, xsrf_input: str) -> str:
    scopes = "".join(
        f"<li><code>{escape(scope)}</code>: {escape(ALL_SCOPES.get(scope, ''))}</li>" for scope in app.scopes
    )
    return _page(
        f"Authorize {app.name}",
        f"<h1>Authorize {escape(app.name)}</h1>"
        f"<p>Signed in as <strong>{escape(user.name)}</strong> ({escape(user.email)}).</p>"
        f"<p><strong>{escape(app.name)}</strong> asks for these permissions:</p>"
        f'<ul id="scopes">{scopes}</ul>'
        f'<p class="hint">You will be sent back to {escape(app.redirect_url)}</p>'
        f'<form method="post">{xsrf_input}'
        f'<button type="submit" name="action" value="authorize">Authorize</button>'
        f'<button type="submit" name="action" value="deny">Deny</button>'
        f"</form>",
    )


def error_page(title: str, message: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


def tokens_page(user: User, xsrf_input: str, made: str | None = None, error: str | None = None) -> str:
    """Developer settings, Access tokens: make a personal access token, shown once (`made`)."""
    shown = (f'<p role="status">Your new token (copy it now: it is not shown again):</p>'
             f'<p><code id="new-token">{escape(made)}</code></p>') if made else ""
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    boxes = "".join(
        f'<label><input type="checkbox" name="scopes" value="{escape(scope)}" style="display:inline;width:auto"> '
        f"<code>{escape(scope)}</code>: {escape(text)}</label>"
        for scope, text in ALL_SCOPES.items() if scope != "tokens:write"
    )
    return _page(
        "Access tokens",
        f"<h1>Developer settings: access tokens</h1>"
        f"<p>Signed in as <strong>{escape(user.name)}</strong> ({escape(user.email)}).</p>"
        f"{shown}{problem}"
        f'<form method="post">{xsrf_input}'
        f'<label for="name">Token name</label><input id="name" name="name" required value="notebook">'
        f"<fieldset><legend>Scopes</legend>{boxes}</fieldset>"
        f'<button type="submit" name="action" value="create">Create token</button></form>',
    )


def home_page(user: User | None, xsrf_input: str) -> str:
    """The server's root: who this browser is signed in as, and Sign out (what the real frontend's avatar menu
    does), so a shared browser can hand over to another account."""
    if user is None:
        return _page("Speckle", "<h1>Speckle emulator</h1><p>Not signed in.</p>"
                                '<p><a href="/settings">Sign in (developer settings: access tokens)</a></p>')
    return _page(
        "Speckle",
        f"<h1>Speckle emulator</h1>"
        f"<p>Signed in as <strong>{escape(user.name)}</strong> ({escape(user.email)}).</p>"
        f'<form method="post">{xsrf_input}'
        f'<button type="submit" name="action" value="signout">Sign out</button></form>'
        f'<p><a href="/settings">Developer settings: access tokens</a></p>',
    )
