"""`speckle-emulator` / `python -m speckle_nb_auth.emulator`: run a local Speckle server until Ctrl-C or
SIGTERM.

Prints one line `Speckle emulator listening on URL` (a script can wait for it), then the seeded users' emails
and passwords (new random ones each run unless `--password` gives them), once, for whoever runs the class.
Tokens, the app secret and the control token are never printed: `--credentials-file` receives them, and the
passwords, (mode 0600). It listens on loopback only unless `--allow-remote` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _interrupts as interrupts
from .._protocol import is_loopback_host
from ._state import DEFAULT_CONNECTOR_REDIRECT_URL, DEFAULT_REDIRECT_URL, SEED_EMAILS

if TYPE_CHECKING:
    from ._emulator import Emulator

__all__ = ["main"]

_MISSING_EXTRA = 'speckle-emulator needs graphql-core: pip install "speckle-nb-auth[emulator]"'


def _emulator_class() -> type[Emulator]:
    """The Emulator, or exit with one line naming the extra when graphql-core is not installed."""
    try:
        from ._emulator import Emulator
    except ImportError as err:
        if err.name != "graphql":
            raise
        print(_MISSING_EXTRA, file=sys.stderr)
        raise SystemExit(1) from None
    return Emulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speckle-emulator",
        description="A local Speckle server with seeded users, tokens and an app, for demos and tests.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on, a loopback one unless --allow-remote "
        "(default: %(default)s)"
    )
    parser.add_argument(
        "--allow-remote", action="store_true",
        help="allow a --host other machines can reach; anyone on the network can then sign in as the seeded users",
    )
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
    parser.add_argument(
        "--password", action="append", default=[], metavar="[EMAIL=]PASSWORD",
        help="a seeded user's password (EMAIL=PASSWORD), or every seeded user's (PASSWORD); may be repeated. "
        "Default: new random passwords each run",
    )
    return parser


def _passwords(parser: argparse.ArgumentParser, given: list[str]) -> dict[str, str]:
    passwords: dict[str, str] = {}
    for item in given:
        email, _, password = item.partition("=")
        if email not in SEED_EMAILS:  # no seeded user's email first: the password of all of them
            email, password = "", item
        emails = [email] if email else list(SEED_EMAILS)
        if not password:
            parser.error("--password: a password cannot be empty")
        passwords.update(dict.fromkeys(emails, password))
    return passwords


def _remote_warning(parser: argparse.ArgumentParser, host: str, allow_remote: bool) -> str | None:
    """None for a loopback host; the warning to print for another one when allowed; else the CLI stops."""
    if is_loopback_host(host):
        return None
    if not allow_remote:
        parser.error(
            f"--host {host} is not a loopback address: anyone on the network could sign in as the seeded "
            "users. Add --allow-remote to listen there anyway."
        )
    return (
        f"Warning: {host} can be reached from other machines: anyone on the network can sign in as the seeded "
        "users with the passwords below and use their tokens. Stop the emulator when the class is over."
    )


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Readable by its owner alone, and whole or not there: written beside, then renamed into place, so whoever
    waits for it never reads half of it (the server already answers while it is written)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode otherwise
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
    os.replace(partial, path)


def _stop_on_signals() -> threading.Event:
    """Set on Ctrl-C or SIGTERM, so either ends the server cleanly with exit status 0."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def main(argv: Sequence[str] | None = None) -> None:
    emulator_class = _emulator_class()  # before --help too: it would describe a command that cannot run
    parser = _parser()
    args = parser.parse_args(argv)
    passwords = _passwords(parser, args.password)
    warning = _remote_warning(parser, args.host, args.allow_remote)
    stop = _stop_on_signals()
    emulator = emulator_class(
        host=args.host,
        port=args.port,
        redirect_url=args.redirect_url,
        connector_redirect_url=args.connector_redirect_url,
        challenge_method=args.challenge_method,
        trusted=args.trusted,
        passwords=passwords,
        allow_remote=args.allow_remote,
    )
    emulator.start()
    try:
        credentials = emulator.credentials
        if args.credentials_file:  # written before the line below, so whoever waits for it can read the file
            _write_private(args.credentials_file, credentials)
        print(f"Speckle emulator listening on {emulator.url}", flush=True)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        for user in credentials["users"]:
            print(f"  sign in as {user['email']} with password {user['password']} ({user['name']})")
        if args.credentials_file:
            print(f"  tokens, app id, app secret and control token: {args.credentials_file}")
        print("Press Ctrl-C to stop.", flush=True)
        interrupts.wait(stop)  # in slices: the OS may hand the signal to the server's thread
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
