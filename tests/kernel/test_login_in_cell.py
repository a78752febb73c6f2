"""`login()` waits in its cell where no server extension runs (VS Code, PyCharm, Colab, a Jupyter without it):
a real kernel started by `jupyter_client` with no Jupyter server around it, so no link; the emulator's
connector app returns to a free loopback port. The test plays the person: it reads the address the cell
shows as text (no widgets are rendered), signs in on the emulator, and answers the kernel's stdin prompt.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from support.bare_kernel import BareKernel, kernel_env
from support.processes import free_loopback_port
from support.speckle import code_of, consent, follow

LOGIN = "from speckle_nb_auth import login\nlogin({args})\nprint('signed in as', speckle.user.name)"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from speckle_nb_auth.emulator import Emulator

    port = free_loopback_port()
    with Emulator(host="127.0.0.1", port=0, connector_redirect_url=f"http://localhost:{port}") as made:
        made.connector_port = port  # type: ignore[attr-defined]
        yield made


class Kernel(BareKernel):
    """A kernel with nothing around it, and the outputs of its cell."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.outputs: list[dict[str, Any]] = []

    def collect(self, msg_id: str, timeout: float = 0.2) -> bool:
        """Gather this cell's outputs that have arrived; True once the kernel is idle after it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except Exception:  # noqa: BLE001 - queue.Empty: nothing more yet
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return True
            if msg["msg_type"] in ("stream", "display_data", "update_display_data", "execute_result", "error"):
                self.outputs.append(msg)
        return False

    def finish(self, msg_id: str, timeout: float = 60.0) -> dict[str, Any]:
        reply = self.client.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:  # a late answer to wait_for_ready's kernel_info
            reply = self.client.get_shell_msg(timeout=timeout)
        deadline = time.monotonic() + 10
        while not self.collect(msg_id, 1.0):
            assert time.monotonic() < deadline, "the kernel never went idle"
        return dict(reply["content"])

    def sign_in_address(self, msg_id: str, timeout: float = 30.0) -> str:
        """The address the cell shows as text for frontends that render no widgets."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.collect(msg_id)
            for msg in self.outputs:
                text = msg["content"].get("data", {}).get("text/plain", "")
                if "open http" in text:
                    return str(text.split("open ", 1)[1].split(" ", 1)[0])
        raise AssertionError(f"no sign-in address shown: {self.text()}")

    def text(self) -> str:
        parts = []
        for msg in self.outputs:
            content = msg["content"]
            parts.append(content.get("text", "") + content.get("data", {}).get("text/plain", "")
                         + "\n".join(content.get("traceback", [])))
        return "\n".join(parts)

    def run(self, code: str) -> str:
        self.outputs = []
        msg_id = self.client.execute(code, allow_stdin=False)
        assert self.finish(msg_id)["status"] == "ok", self.text()
        return self.text()


@pytest.fixture
def kernel(emu: Any, tmp_path: Path) -> Iterator[Kernel]:
    made = Kernel(kernel_env(emu, tmp_path))
    yield made
    made.stop()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_login_waits_for_the_kernels_own_listener_and_the_next_line_finds_speckle(emu, kernel):
    ada = emu.credentials["users"][0]
    msg_id = kernel.client.execute(LOGIN.format(args=""), allow_stdin=True)
    address = kernel.sign_in_address(msg_id)
    assert address.startswith(emu.url + "/authn/verify/sca/")
    assert follow(emu, address).status_code == 200  # the browser comes back to the kernel's listener
    assert kernel.finish(msg_id)["status"] == "ok", kernel.text()
    assert f"signed in as {ada['name']}" in kernel.text()
    assert not listening(emu.connector_port)


def test_login_paste_asks_on_stdin_and_signs_in_from_the_address(emu, kernel):
    ada = emu.credentials["users"][0]
    msg_id = kernel.client.execute(LOGIN.format(args="paste=True"), allow_stdin=True)
    prompt = kernel.client.get_stdin_msg(timeout=60)
    assert prompt["msg_type"] == "input_request" and prompt["content"]["password"], prompt  # never echoed
    address = kernel.sign_in_address(msg_id)
    assert not listening(emu.connector_port)  # the kernel's listener is never reached: it does not listen
    redirect = consent(emu, authorize_url=address)
    kernel.client.input("not the address")  # a wrong answer: said, and asked again
    again = kernel.client.get_stdin_msg(timeout=30)
    assert again["msg_type"] == "input_request"
    kernel.client.input(redirect)
    assert kernel.finish(msg_id)["status"] == "ok", kernel.text()
    text = kernel.text()
    assert "That is not the address Speckle sent the sign-in tab to" in text
    assert f"signed in as {ada['name']}" in text
    assert code_of(redirect) not in text
    token = kernel.run("print(str(speckle._auth.pair.token))").strip()  # the test looks: the package never shows it
    assert token and token not in text


def test_an_interrupt_ends_the_wait_in_one_line_and_leaves_no_listener(emu, kernel):
    msg_id = kernel.client.execute(LOGIN.format(args=""), allow_stdin=True)
    kernel.sign_in_address(msg_id)
    assert listening(emu.connector_port)
    kernel.manager.interrupt_kernel()
    reply = kernel.finish(msg_id)
    assert reply["status"] == "error"
    errors = [m["content"]["traceback"] for m in kernel.outputs if m["msg_type"] == "error"]
    assert errors == [["NotSignedIn: Sign-in stopped: the kernel was interrupted. To sign in, run this cell "
                       "again to sign in."]], errors
    # the address shown while waiting is gone from the output a saved notebook keeps
    updates = [m["content"]["data"]["text/plain"] for m in kernel.outputs if m["msg_type"] == "update_display_data"]
    assert updates and "authn/verify" not in updates[-1], updates
    assert not listening(emu.connector_port)
    threads = kernel.run("import threading\nprint([t.name for t in threading.enumerate()])")
    assert "speckle" not in threads, threads


def nobody_notebook() -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from speckle_nb_auth import login\nlogin()"),
                nbformat.v4.new_code_cell("print(speckle.user.name)")]
    return nb


def check_nobody_error(text: str) -> None:
    assert "NotSignedIn: Nobody can sign in here" in text, text
    assert "SPECKLE_TOKEN" in text and "python -m speckle_nb_auth login" in text


def test_nbclient_with_nobody_there_stops_in_the_login_cell_within_seconds(emu, tmp_path, monkeypatch):
    for key, value in kernel_env(emu, tmp_path).items():
        monkeypatch.setenv(key, value)
    nb = nobody_notebook()
    started = time.monotonic()
    client = NotebookClient(nb, kernel_name="python3", timeout=60, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert time.monotonic() - started < 60
    login_outputs = nb.cells[0].outputs
    assert [o.get("ename") for o in login_outputs if o.output_type == "error"] == ["LoginNotFinished"]
    check_nobody_error("\n".join("\n".join(o.get("traceback", [])) for o in login_outputs))


def test_nbconvert_execute_with_nobody_there_stops_in_the_login_cell(emu, tmp_path):
    path = tmp_path / "nobody.ipynb"
    nbformat.write(nobody_notebook(), path)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                           "--stdout", str(path)], env=kernel_env(emu, tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert time.monotonic() - started < 60
    assert done.returncode != 0  # the login cell's error stops nbconvert
    check_nobody_error(done.stderr)
    # nobody there: the kernel opens no status-bar comm, which nbconvert would warn of as an unknown target
    assert "comm target" not in done.stderr, done.stderr


def test_another_users_listener_on_the_port_stops_login_before_any_address_is_shown(emu, kernel):
    from support.another_user import listening_as_nobody

    with listening_as_nobody(emu.connector_port):
        for args in ("", "paste=True"):  # listening, and pasting (the browser would still go to that port)
            kernel.outputs = []
            msg_id = kernel.client.execute(LOGIN.format(args=args), allow_stdin=True)
            assert kernel.finish(msg_id)["status"] == "error", kernel.text()
            errors = [m["content"]["traceback"] for m in kernel.outputs if m["msg_type"] == "error"]
            assert len(errors) == 1 and len(errors[0]) == 1, errors
            assert f"Port {emu.connector_port} of this machine" in errors[0][0]
            assert "held by another user of this machine (nobody, uid 65534)" in errors[0][0]
            assert "personal access token" in errors[0][0]
            assert "authn/verify" not in kernel.text()  # no sign-in address was ever shown
