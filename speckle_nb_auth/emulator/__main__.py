"""`speckle-emulator` / `python -m speckle_nb_auth.emulator`: run a local Speckle server until Ctrl-C or
SIGTERM.

Prints one line `Speckle emulator listening on URL` (a script can wait for it), then the seeded users' emails
and passwords. Tokens and the app secret are never printed: `--credentials-file` receives them (mode 0600).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._emulator import Emulator
from ._state import DEFAULT_CONNECTOR_REDIRECT_URL, DEFAULT_REDIRECT_URL

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speckle-emulator",
        description="A local Speckle server with seeded users, tokens and an app, for demos and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument(
        "--redirect-url",
        default=DEFAULT_REDIRECT_URL,
        help="the seeded app's redirect URL (default: %(default)s)",
    )
    parser.add_argument(
        "--connector-redirect-url",
        default=DEFAULT_CONNECTOR_REDIRECT_URL,
        help="where Speckle's public connector app 'sca' sends the browser back (default: %(default)s)",
    )
    parser.add_argument(
        "--credentials-file",
        type=Path,
        help="write the URL, tokens, app id and secret here as JSON (mode 0600)",
    )
    parser.add_argument(
        "--challenge-method", choices=("plain", "S256"), default="plain",
        help="how the code exchange checks the challenge: 'plain' as Speckle servers do (default), or 'S256'",
    )
    parser.add_argument(
        "--trusted", action="store_true", help="mark the seeded app trusted: no consent screen"
    )
    return parser


def _write_private(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.write("\n")


def _stop_on_signals() -> threading.Event:
    """Set on Ctrl-C or SIGTERM, so either ends the server cleanly with exit status 0."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    stop = _stop_on_signals()
    emulator = Emulator(
        host=args.host,
        port=args.port,
        redirect_url=args.redirect_url,
        connector_redirect_url=args.connector_redirect_url,
        challenge_method=args.challenge_method,
        trusted=args.trusted,
    )
    emulator.start()
    try:
        credentials = emulator.credentials
        if args.credentials_file:  # written before the line below, so whoever waits for it can read the file
            _write_private(args.credentials_file, credentials)
        print(f"Speckle emulator listening on {emulator.url}", flush=True)
        for user in credentials["users"]:
            print(f"  sign in as {user['email']} with password {user['password']} ({user['name']})")
        if args.credentials_file:
            print(f"  tokens, app id and app secret: {args.credentials_file}")
        print("Press Ctrl-C to stop.", flush=True)
        stop.wait()
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
