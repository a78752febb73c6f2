"""Running the service: `python -m speckle_nb_auth.hub`, as JupyterHub starts it (see `configure`)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from urllib.parse import urlsplit

import httpx
from jupyterhub.services.auth import HubOAuth

from .._transport import DEFAULT_TIMEOUT
from ..core._logins import check_redirect_uris
from ._service import log, make_app, service_from_environment

__all__ = ["main"]

USAGE = """usage: python -m speckle_nb_auth.hub

The hub's Speckle login service, started by JupyterHub: set it up in jupyterhub_config.py with
speckle_nb_auth.hub.configure(c, server=..., app_id=..., app_secret_env=..., public_url=...)."""


async def serve() -> int:
    client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
    service, problems = service_from_environment(client)
    for problem in problems:
        log.error("Speckle login service configuration: %s", problem)
    os.environ.pop("SPECKLE_APP_SECRET", None)  # read once; nothing this process starts needs it
    bind = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "") or "http://127.0.0.1:10101")
    address = os.environ.get("SPECKLE_AUTH_BIND_IP", "").strip() or bind.hostname or "127.0.0.1"
    hub_auth = HubOAuth(cache_max_age=60)
    app = make_app(service, hub_auth)
    server = app.listen(service.port, address, xheaders=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    log.info("Speckle login service on %s:%d%s; Log in with Speckle: %s", address, service.port, service.prefix,
             ", ".join(s.describe_login() for s in service.logins.servers))
    check = asyncio.ensure_future(asyncio.gather(
        check_redirect_uris(client, service.logins.servers, service.callback_url, log),
        service.logins.learn_public_scopes(),
    ))
    try:
        await stopping.wait()
    finally:
        check.cancel()
        server.stop()
        service.owners.close()
        await client.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(USAGE, file=sys.stdout if args in (["-h"], ["--help"]) else sys.stderr)
        return 0 if args in (["-h"], ["--help"]) else 2
    if not os.environ.get("JUPYTERHUB_API_TOKEN"):
        print("python -m speckle_nb_auth.hub is started by JupyterHub, which gives it JUPYTERHUB_API_TOKEN and "
              "the rest of its environment: add it with speckle_nb_auth.hub.configure(c, ...) in "
              "jupyterhub_config.py.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry URLs with codes in them
    return asyncio.run(serve())
