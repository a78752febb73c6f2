"""The one small HTML document every page of ours is (the extension's and the hub service's login pages, the
loopback receiver's page), and the headers that make it safe to show a result on: a fresh nonce per page, a CSP
that allows nothing else, no referrer, no framing, no caching. Pure Python, no web framework."""

from __future__ import annotations

import html
import secrets

__all__ = ["document", "new_nonce", "page_headers"]


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def page_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Type": "text/html; charset=UTF-8",
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def document(nonce: str, title: str, message: str, *, after: str = "", script: str = "") -> str:
    """The page: `title` and `message` are escaped here; `after` (markup below the message) and `script` (a
    `<script nonce=...>` element) are the caller's, already safe."""
    return _DOCUMENT.format(nonce=nonce, title=html.escape(title), message=html.escape(message), after=after,
                            script=script)


_DOCUMENT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title} \u00b7 Speckle</title>
<style nonce="{nonce}">
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem;
       line-height: 1.5; color: #1f2328; }}
h1 {{ font-size: 1.4rem; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{message}</p>
{after}
</main>
{script}
</body>
</html>
"""
