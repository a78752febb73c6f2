"""The kernel's own line to the Jupyter server that started it, where the server extension runs.

Comm messages reach a kernel only between cells (see the design notes), but a kernel thread can always make
HTTP calls. A local Jupyter server writes `jpserver-<pid>.json` (its URL and token) into the runtime directory,
and a kernel is its child; a JupyterHub single-user server gives its kernels `JUPYTERHUB_SERVICE_URL` and
`JUPYTERHUB_API_TOKEN`. With either, the kernel collects the panel's messages from the extension's mailbox,
claims finished logins and renews tokens itself, whatever its cells are doing. Without (a password-only
server, a remote kernel, VS Code), there is no link and the panel's comm is the only way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ._transport import ssl_context

__all__ = ["JupyterLink", "find_link"]

PREFIX = "speckle-auth/"


@dataclass(frozen=True)
class JupyterLink:
    """The extension's routes at `base` (the server's URL, base_url included), called with the server's own
    token."""

    base: str
    token: str = field(repr=False)

    def url(self, path: str) -> str:
        return self.base.rstrip("/") + "/" + PREFIX + path

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(
            headers={"Authorization": f"token {self.token}"}, timeout=timeout, verify=ssl_context()
        )

    def get(self, path: str, *, timeout: float = 10.0, **params: Any) -> httpx.Response:
        with self.client(timeout) as http:
            return http.get(self.url(path), params=params)

    def post(self, path: str, body: dict[str, Any] | None = None, *, timeout: float = 10.0) -> httpx.Response:
        with self.client(timeout) as http:
            return http.post(self.url(path), json=body if body is not None else {})


def find_link() -> JupyterLink | None:
    """The link to this kernel's Jupyter server if the extension answers there with this kernel's
    credentials, else None. Never raises."""
    for candidate in (_from_hub(), _from_runtime_file()):
        if candidate is not None and _answers(candidate):
            return candidate
    return None


def _from_hub() -> JupyterLink | None:
    url = os.environ.get("JUPYTERHUB_SERVICE_URL", "").strip()
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "").strip()
    if not url or not token:
        return None
    return JupyterLink(url, token)


def _from_runtime_file() -> JupyterLink | None:
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        path = Path(jupyter_runtime_dir()) / f"jpserver-{os.getppid()}.json"
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ImportError, OSError, ValueError):
        return None
    url, token = info.get("url"), info.get("token")
    if not isinstance(url, str) or not isinstance(token, str) or not token:
        return None  # a password-only server: its kernels hold nothing to authenticate with
    return JupyterLink(url, token)


def _answers(link: JupyterLink) -> bool:
    try:
        response = link.get("status", timeout=5.0)
        return response.status_code == 200 and bool(response.json().get("mailbox"))
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
