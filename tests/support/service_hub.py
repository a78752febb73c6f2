"""A real JupyterHub with the Speckle login service, set up only by the admin guide's `configure(...)` cell, whose
users are real Unix users the test creates (JupyterHub's LocalProcessSpawner), as on The Littlest JupyterHub.

Their servers run from a venv they can read: made once per run under /tmp from /usr/bin/python3, with this venv's
site-packages hard-linked in and this checkout's package copied beside it (the project's own venv may live where
other users cannot read, e.g. under /root).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nbformat
import pytest

from support import REPO, TESTS
from support.jupyter_server import DEFAULT_SETTINGS, write_notebook, write_settings
from support.jupyterhub import HubUser
from support.memory_keyring import KEYRING_ENV
from support.processes import LOOPBACK, free_port, http_client, start_server, stop_process

NODE_BIN = REPO / "node_modules" / ".bin"
GUIDE = REPO / "notebooks" / "jupyterhub-admin-guide.ipynb"
SECRET_ENV = "SPECKLE_APP_SECRET"  # the name the guide's configure(...) cell gives
USERS = {"alice": "snbhub-alice", "bob": "snbhub-bob"}  # person -> hub and Unix user
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def guide_cell(tag: str) -> str:
    nb = nbformat.read(GUIDE, as_version=4)
    return next(cell.source for cell in nb.cells if tag in cell.get("metadata", {}).get("tags", []))


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("The JupyterHub service tests create Unix users (useradd) and run a hub that becomes them: run "
                    "them as root (e.g. in the CI container).", pytrace=False)


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)  # noqa: S603


def build_user_venv(root: Path) -> Path:
    """A venv any user can run: /usr/bin/python3 with this venv's packages and this checkout's package."""
    venv = root / "venv"
    run("/usr/bin/python3", "-m", "venv", "--without-pip", str(venv))
    here = Path(sys.prefix)
    site = venv / SITE
    shutil.rmtree(site)
    shutil.copytree(here / SITE, site, copy_function=os.link,
                    ignore=shutil.ignore_patterns("_editable_impl_*", "__editable__*", "__pycache__"))
    for part in ("etc", "share"):
        if (here / part).exists():
            shutil.copytree(here / part, venv / part, copy_function=os.link, dirs_exist_ok=True)
    src = root / "src"
    shutil.copytree(REPO / "speckle_nb_auth", src / "speckle_nb_auth",
                    ignore=shutil.ignore_patterns("__pycache__"))
    testlib = root / "testlib"  # the kernels' keyring backend (support.memory_keyring) and `import secret_probe`
    (testlib / "support").mkdir(parents=True)
    for helper in ("support/__init__.py", "support/memory_keyring.py"):
        shutil.copy(TESTS / helper, testlib / helper)
    shutil.copy(TESTS / "support" / "secret_probe.py", testlib / "secret_probe.py")
    (site / "speckle-nb-auth-test.pth").write_text(f"{src}\n{testlib}\n")
    run("chmod", "-R", "a+rX", str(root))
    return venv


def create_user(name: str, home: Path) -> None:
    try:
        pwd.getpwnam(name)
        run("userdel", "-r", "-f", name)
    except KeyError:
        pass
    run("useradd", "-m", "-d", str(home), "-s", "/bin/sh", name)


def delete_user(name: str) -> None:
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True, check=False)  # noqa: S603, S607


@dataclass
class ServiceHub:
    tmp: Path
    emulator: Any
    venv: Path
    port: int
    service_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(8))
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))  # person -> hub and Unix user

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    @property
    def redirect_url(self) -> str:
        return f"{self.url}services/speckle-auth/callback"

    @property
    def service_url(self) -> str:
        return f"http://{LOOPBACK}:{self.service_port}/services/speckle-auth/"

    @property
    def log_path(self) -> Path:
        return self.tmp / "jupyterhub.log"

    @property
    def secret(self) -> str:
        return str(self.emulator.credentials["app_secret"])

    def home(self, person: str) -> Path:
        return Path(pwd.getpwnam(self.users[person]).pw_dir)

    def user_url(self, person: str, path: str = "") -> str:
        return f"{self.url}user/{self.users[person]}/{path}"

    def authentication(self) -> list[str]:
        """How people log in to this hub, and the admin guide's cell that sets up Speckle on it."""
        return [
            "c.JupyterHub.authenticator_class = 'dummy'",
            f"c.DummyAuthenticator.password = {self.password!r}",
            f"c.Authenticator.allowed_users = {set(self.users.values())!r}",
            guide_cell("jupyterhub_config"),
        ]

    def hub_environment(self) -> dict[str, str]:
        return {SECRET_ENV: self.secret}  # the hub's own environment: the only place the admin puts it

    def config(self) -> str:
        settings = self.tmp / "settings"
        write_settings(settings, DEFAULT_SETTINGS)
        run("chmod", "-R", "a+rX", str(settings))
        environment = {
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "SPECKLE_USERDATA_PATH": "/nonexistent/speckle-desktop-accounts",
            **KEYRING_ENV,
        }
        deployment = "\n".join([
            f"SPECKLE_SERVER = {self.emulator.url!r}",
            f"APP_ID = {self.emulator.credentials['app_id']!r}",
            f"HUB_URL = {self.url.rstrip('/')!r}",
            f"SERVICE_URL = 'http://{LOOPBACK}:{self.service_port}'",
        ])
        lines = [
            f"c.JupyterHub.bind_url = {self.url.rstrip('/')!r}",
            f"c.JupyterHub.hub_ip = {LOOPBACK!r}",
            f"c.JupyterHub.hub_port = {free_port()}",
            f"c.ConfigurableHTTPProxy.api_url = 'http://{LOOPBACK}:{free_port()}'",
            f"c.ConfigurableHTTPProxy.command = [{str(NODE_BIN / 'configurable-http-proxy')!r}]",
            f"c.JupyterHub.db_url = 'sqlite:///{self.tmp / 'jupyterhub.sqlite'}'",
            f"c.JupyterHub.cookie_secret_file = {str(self.tmp / 'jupyterhub_cookie_secret')!r}",
            f"c.JupyterHub.pid_file = {str(self.tmp / 'jupyterhub.pid')!r}",
            f"c.Spawner.ip = {LOOPBACK!r}",
            f"c.Spawner.cmd = [{str(self.venv / 'bin' / 'python')!r}, '-m', 'jupyterhub.singleuser']",
            "c.Spawner.args = ['--LabApp.expose_app_in_browser=True', '--ServerApp.log_level=INFO']",
            "c.Spawner.default_url = '/lab'",
            "c.Spawner.start_timeout = 60",
            "c.Spawner.http_timeout = 60",
            f"c.Spawner.environment = {environment!r}",
            "c.JupyterHub.cleanup_servers = True",
            # JupyterHub notices that a managed service died when it next polls it, every 30 s (a class default
            # that no configuration reaches); the restart test waits for that, so this hub polls every 2 s
            "from jupyterhub.services.service import _ServiceSpawner",
            "_ServiceSpawner.poll_interval = 2",
            "# the admin guide's cells: the deployment's values, then its configure(...) cell",
            deployment,
            *self.authentication(),
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> ServiceHub:
        config = self.tmp / "jupyterhub_config.py"
        config.write_text(self.config())
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("SPECKLE_") and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env["PATH"] = os.pathsep.join([str(NODE_BIN), str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(self.hub_environment())
        self.proc = start_server([sys.executable, "-m", "jupyterhub", "-f", str(config)], log=self.log_path,
                                 cwd=self.tmp, env=env, ready=self.ready,
                                 what=f"JupyterHub and its Speckle login service at {self.url}")
        return self

    def ready(self) -> bool:
        """Whether the hub answers its REST API and the service its status (403 without a token: it is up)."""
        try:
            with http_client() as http:
                hub = http.get(f"{self.url}hub/api/")
                service = http.get(f"{self.service_url}status")
            return hub.status_code == 200 and service.status_code == 403
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=30)

    def server_token(self, person: str) -> str:
        """The JupyterHub API token of `person`'s running server, read (as root) from its environment."""
        uid = pwd.getpwnam(self.users[person]).pw_uid
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat(f"/proc/{pid}").st_uid != uid:
                    continue
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"jupyterhub.singleuser" not in cmdline:
                    continue
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for entry in environ:
                if entry.startswith(b"JUPYTERHUB_API_TOKEN="):
                    return entry.split(b"=", 1)[1].decode()
        raise AssertionError(f"no running server of {person} found")


def probe_result(hub: ServiceHub, person: str, name: str) -> dict[str, Any]:
    return json.loads((hub.home(person) / name).read_text())


AnyHub = TypeVar("AnyHub", bound=ServiceHub)


@contextmanager
def hub_with_unix_users(make: Callable[[Path, Any, Path, int], AnyHub], users: dict[str, str],
                        redirect_path: str) -> Iterator[AnyHub]:
    """`users` made Unix users, the emulator whose app sends browsers to the hub's `redirect_path`, and the hub
    `make(tmp, emulator, venv, port)` started; everything removed afterwards."""
    from speckle_nb_auth.emulator import Emulator

    require_root()
    root = Path(tempfile.mkdtemp(prefix="snb-hub-", dir="/tmp"))
    root.chmod(0o755)
    try:
        venv = build_user_venv(root)
        for person, name in users.items():
            create_user(name, root / "home" / person)
        port = free_port()
        with Emulator(host=LOOPBACK, port=0, redirect_url=f"http://{LOOPBACK}:{port}/{redirect_path}") as emu:
            hub = make(root / "hub", emu, venv, port)
            assert emu.credentials["redirect_url"] == hub.redirect_url
            hub.tmp.mkdir(mode=0o700)
            hub.start()
            try:
                yield hub
            finally:
                hub.stop()
    finally:
        for name in users.values():
            delete_user(name)
        shutil.rmtree(root, ignore_errors=True)


class UnixHubUser(HubUser):
    """A hub user with a Unix account of their own and a browser of their own."""

    hub: ServiceHub

    def __init__(self, hub: ServiceHub, browser: Any, person: str) -> None:
        super().__init__(hub, browser, person)
        self.person = person
        self.user = hub.users[person]

    def write_notebook(self, cells: list[str]) -> str:
        """A notebook in this person's home, theirs; the address that opens it (spawning their server)."""
        name = f"{self.person}-{secrets.token_hex(3)}.ipynb"
        path = write_notebook(self.hub.home(self.person) / name, cells)
        shutil.chown(path, self.user, self.user)
        return f"/hub/user-redirect/lab/workspaces/w{secrets.token_hex(4)}/tree/{name}"

    def wait_for_notebook(self) -> None:
        try:
            self.page.wait_for_url(lambda url: url.startswith(self.hub.user_url(self.person, "lab/workspaces/")),
                                   timeout=60_000)
            self.ui.wait_for_kernel(timeout=60)
        except Exception as err:
            raise AssertionError(f"{self.person}'s notebook never got an idle kernel: {err}\n{self.diagnostics()}") \
                from None
