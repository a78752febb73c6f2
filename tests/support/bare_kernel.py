"""A kernel with nothing around it, as VS Code or a remote frontend starts one: `jupyter_client` alone, no Jupyter
server (so no link to an extension), its environment pointing at the emulator and an in-memory keyring."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_client import BlockingKernelClient, KernelManager

from support import TESTS
from support.memory_keyring import BACKEND


def kernel_env(emu: Any, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPECKLE_", "JUPYTERHUB_"))}
    env.update(SPECKLE_SERVER=emu.url, PYTHON_KEYRING_BACKEND=BACKEND, HOME=str(home),
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return env


class BareKernel:
    """The kernel, started and ready, and its client (no heartbeat: under load it reads a slow kernel as dead)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env)
        self.client: BlockingKernelClient = self.manager.client()
        self.client.start_channels(hb=False)
        self.client.wait_for_ready(timeout=90)

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
