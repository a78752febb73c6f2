"""The login panel's kernel half as anywidget drives it: `(widget, content, buffers)` messages from a browser half
played by the test, in a fake IPython shell, against the emulator. The fixtures that make panels are in
support/fixtures_panel.py."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from speckle_nb_auth import get_client
from speckle_nb_auth.panel import LoginPanel
from support.speckle import oauth_pair

WHO = "query { activeUser { name } }"


class FakeShell:
    """What the panel uses of IPython's shell."""

    def __init__(self) -> None:
        self.user_ns: dict[str, object] = {}
        self.execution_count = 1


def deliver(panel: LoginPanel, content: object) -> None:
    """As anywidget delivers a `model.send(...)` from the browser."""
    panel._handle_message(panel, content, [])


def hand_over(panel: LoginPanel, server: str, token: str, refresh_token: str | None) -> None:
    """The browser half's message after it claimed a login's token pair from the server extension."""
    deliver(panel, {"type": "oauth", "server_url": server, "token": token, "refresh_token": refresh_token})


def token_pair(emu: Any, user: int = 0) -> tuple[str, str]:
    """A real app token pair, as plain strings (as a message from the browser half carries them)."""
    pair = oauth_pair(emu, user=user)
    assert pair.refresh_token is not None
    return str(pair.token), str(pair.refresh_token)


def kill_token(emu: Any, token: str) -> None:
    """Log the token out alone: it dies, its refresh token lives (as when a token expires)."""
    httpx.post(f"{emu.url}/auth/logout", json={"token": token}).raise_for_status()


def direct_refresh(emu: Any, refresh_token: str) -> tuple[str, str]:
    """What the extension's refresh route does."""
    creds = emu.credentials
    answer = httpx.post(f"{emu.url}/auth/token", json={
        "appId": creds["app_id"], "appSecret": creds["app_secret"], "refreshToken": refresh_token,
    })
    answer.raise_for_status()
    return answer.json()["token"], answer.json()["refreshToken"]


def assert_no_secret(panel: LoginPanel, *secrets_: str | None) -> None:
    state = json.dumps(panel.get_state())
    for secret in secrets_:
        if not secret or len(set(secret)) < 4:
            continue  # not a secret worth looking for ("", "   ", "aaaa...")
        assert secret not in state
        assert secret[-8:] not in state


def assert_consistent(panel: LoginPanel, shell: FakeShell) -> None:
    client = panel.client
    if client is None:
        assert panel.status == "signed_out"
        assert "speckle" not in shell.user_ns
    else:
        assert panel.status == "signed_in"
        assert shell.user_ns["speckle"] is client
        assert panel.user_name == client.user.name
        assert panel.server_url == client.url
        assert get_client() is client


class FakeBrowser:
    """The panel's browser half answering `refresh` requests, from another thread, as the extension would."""

    def __init__(self, panel: LoginPanel, emu: Any, *, answer: str = "refreshed") -> None:
        self.panel, self.emu, self.answer = panel, emu, answer
        self.requests: list[dict[str, Any]] = []
        self.threads: list[threading.Thread] = []
        panel.send = self.receive  # type: ignore[method-assign]

    def receive(self, content: dict[str, Any], buffers: object = None) -> None:
        self.requests.append(content)
        thread = threading.Thread(target=self.reply, args=(content,))
        self.threads.append(thread)
        thread.start()

    def reply(self, request: dict[str, Any]) -> None:
        if self.answer == "refreshed":
            token, refresh_token = direct_refresh(self.emu, request["refresh_token"])
            deliver(self.panel, {"type": "refreshed", "id": request["id"], "token": token,
                                 "refresh_token": refresh_token})
        elif self.answer == "failed":
            deliver(self.panel, {"type": "refresh_failed", "id": request["id"],
                                 "message": "Speckle no longer accepts this sign-in: log in again."})
