"""The Tornado half of the login routes, shared by the server extension and the hub's login service: writing a
`Reply` or a `Page` of the login core, and the flow cookie that binds Speckle's callback to the browser that
started the login. Who is asking, and what each route answers, stay with the host and the core.
"""

from __future__ import annotations

import json
from typing import Any

from tornado import web

from ._html import new_nonce, page_headers
from .core._pages import Page, render
from .core._requests import Reply

__all__ = ["LoginRoute"]


class LoginRoute(web.RequestHandler):
    """A login route; a host mixes it in before its own base handler and gives the flow cookie's name and path."""

    def flow_cookie(self) -> tuple[str, str]:
        """The flow cookie's name and path."""
        raise NotImplementedError

    def answer(self, reply: Reply) -> None:
        self.set_status(reply.status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(reply.body))

    def set_page_headers(self) -> None:
        """The default headers of a sign-in tab's route (its redirects and refusals too): no referrer, no frame,
        no caching."""
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Cache-Control", "no-store")

    def show(self, page: Page) -> None:
        """A page of ours: one document, a fresh nonce, no referrer, no frame, no caching."""
        nonce = new_nonce()
        self.set_status(page.status)
        for name, value in page_headers(nonce).items():
            self.set_header(name, value)
        self.finish(render(page, nonce))

    def read_flow_cookie(self, lifetime: float) -> bytes | None:
        value: Any = self.get_signed_cookie(self.flow_cookie()[0], max_age_days=lifetime / 86400)
        return value if isinstance(value, bytes) else None

    def set_flow_cookie(self, flow_id: str, lifetime: float) -> None:
        name, path = self.flow_cookie()
        # behind a proxy that ends TLS, the server itself sees http
        forwarded = self.request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        self.set_signed_cookie(name, flow_id, expires_days=None, path=path, max_age=int(lifetime), httponly=True,
                               samesite="Lax", secure=self.request.protocol == "https" or forwarded == "https")
