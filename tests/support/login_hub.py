"""A real JupyterHub that logs people in with Speckle (SpeckleAuthenticator), set up by the admin guide's
`configure(c, ..., login=True)` cell, with real Unix users as support/service_hub.py's hub has them.

The emulator's registered app has ONE redirect URL, the hub's `.../hub/oauth_callback`. Speckle accounts map to
Unix users by their email's local part (`snbsp-ada` for ada@example.com), which is what `username_claim` is for
on a hub whose users are Unix accounts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import httpx

from support.processes import http_client
from support.service_hub import ServiceHub, guide_cell

LOGIN_USERS = {"ada": "snbsp-ada", "grace": "snbsp-grace"}  # person -> hub and Unix user
CRYPT_KEY = secrets.token_hex(32)


@dataclass
class LoginHub(ServiceHub):
    users: dict[str, str] = field(default_factory=lambda: dict(LOGIN_USERS))

    @property
    def redirect_url(self) -> str:
        return f"{self.url}hub/oauth_callback"

    def authentication(self) -> list[str]:
        return [
            guide_cell("jupyterhub_config_login"),
            "c.SpeckleAuthenticator.username_claim = lambda info: 'snbsp-' + info['email'].split('@')[0]",
            "c.JupyterHub.log_level = 'DEBUG'",  # the tests look for secrets in the log at every level
        ]

    def hub_environment(self) -> dict[str, str]:
        return {**super().hub_environment(), "JUPYTERHUB_CRYPT_KEY": CRYPT_KEY}

    def ready(self) -> bool:
        try:
            with http_client() as http:
                return http.get(f"{self.url}hub/api/").status_code == 200
        except httpx.HTTPError:
            return False

    def token_route(self, person: str) -> str:
        return f"{self.url}hub/api/speckle/users/{self.users[person]}/token"
