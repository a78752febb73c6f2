"""The status comm the JupyterLab extension reads (speckle_nb_auth/_frontend_status.py), from a real kernel started by
`jupyter_client`: the test is the frontend. It hears the kernel's own comm when the sign-in session is made, opens
one of its own as a page that loads later does, asks for a logout through it, and never sees a token."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bare_kernel import BareKernel, kernel_env
from support.speckle import make_pat

from speckle_nb_auth._frontend_status import TARGET


class Frontend(BareKernel):
    """A kernel and every iopub message it sent, as a frontend hears them."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.heard: list[dict[str, Any]] = []

    def run(self, code: str) -> None:
        reply = self.client.execute_interactive(code, timeout=60, output_hook=self.heard.append)
        assert reply["content"]["status"] == "ok", self.heard

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        self.client.shell_channel.send(self.client.session.msg(msg_type, content))

    def summary(self, comm_id: str | None, pending: int = 0, timeout: float = 20.0) -> dict[str, Any]:
        """The `pending`-th summary not read yet on comm `comm_id` (None: the kernel's own comm_open)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m["content"]["data"] for m in self.heard if _on(m, comm_id)]
            if len(found) > pending:
                return dict(found[pending])
            try:
                self.heard.append(self.client.get_iopub_msg(timeout=0.2))
            except Exception:  # noqa: BLE001 - queue.Empty: nothing more yet
                continue
        raise AssertionError(f"no summary {pending} on {comm_id}: {[m['msg_type'] for m in self.heard]}")


def _on(msg: dict[str, Any], comm_id: str | None) -> bool:
    content = msg["content"]
    if comm_id is None:
        return msg["msg_type"] == "comm_open" and content.get("target_name") == TARGET
    return msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id


@pytest.fixture
def frontend(emulator: Any, tmp_path: Path) -> Iterator[tuple[Frontend, str]]:
    token = make_pat(emulator, ["profile:read", "profile:email", "streams:read", "tokens:read"])
    made = Frontend(kernel_env(emulator, tmp_path) | {"SPECKLE_TOKEN": token})
    yield made, token
    made.stop()


def test_the_kernel_tells_the_frontend_its_sign_in_and_logs_out_when_asked(
    frontend: tuple[Frontend, str], emulator: Any
) -> None:
    kernel, token = frontend
    ada = emulator.credentials["users"][0]
    kernel.run("import speckle_nb_auth\nspeckle_nb_auth.login()")
    own = next(m for m in kernel.heard if _on(m, None))  # the kernel's comm, opened when its session was made
    assert own["content"]["data"] == {"signed_in": False}  # made before it signed in
    opened = kernel.summary(own["content"]["comm_id"])
    assert opened["signed_in"] is True and opened["user"] == ada["name"] and opened["email"] == ada["email"]
    assert opened["server"] == emulator.url and opened["from"] == "SPECKLE_TOKEN from the environment"
    assert "tokens:read" in opened["scopes"] and opened["token"].startswith("created ")

    page = str(uuid.uuid4())  # a page that loads later opens a comm of its own, and is answered at once
    kernel.send("comm_open", {"comm_id": page, "target_name": TARGET, "data": {}})
    assert kernel.summary(page)["user"] == ada["name"]

    kernel.send("comm_msg", {"comm_id": page, "data": {"do": "logout"}})
    after = kernel.summary(page, pending=1)
    assert after["signed_in"] is False
    assert "SPECKLE_TOKEN was not revoked" in after["message"]
    kernel.run("print('speckle' in globals())")
    assert any("False" in m["content"].get("text", "") for m in kernel.heard if m["msg_type"] == "stream")
    everything = json.dumps([m["content"] for m in kernel.heard])
    assert token not in everything and token[:10] not in everything  # a summary names, it never holds a token


def test_a_kernel_without_a_sign_in_session_closes_the_frontends_comm(frontend: tuple[Frontend, str]) -> None:
    kernel, _ = frontend
    page = str(uuid.uuid4())
    kernel.send("comm_open", {"comm_id": page, "target_name": TARGET, "data": {}})
    deadline = time.monotonic() + 20
    while not any(m["msg_type"] == "comm_close" and m["content"].get("comm_id") == page for m in kernel.heard):
        assert time.monotonic() < deadline, [m["msg_type"] for m in kernel.heard]
        try:
            kernel.heard.append(kernel.client.get_iopub_msg(timeout=0.2))
        except Exception:  # noqa: BLE001 - queue.Empty
            continue
    # the frontend reads a closed comm as "not signed in", until the kernel opens one when a session is made
    kernel.run("import speckle_nb_auth\nspeckle_nb_auth.login()")
    own = next(m for m in kernel.heard if _on(m, None))["content"]["comm_id"]
    assert kernel.summary(own)["signed_in"] is True
    kernel.run("speckle.logout()")  # a cell's logout reaches the status bar too
    assert kernel.summary(own, pending=1)["signed_in"] is False
