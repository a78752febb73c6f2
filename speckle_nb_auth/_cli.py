"""The terminal commands, as `gh auth` has them: `login`, `status`, `logout`, and `revoke` for a leaked token.

    python -m speckle_nb_auth login [SERVER] [--no-browser] [--paste] [--env-file [PATH]]
    python -m speckle_nb_auth status [SERVER]
    python -m speckle_nb_auth logout [SERVER]
    python -m speckle_nb_auth revoke [--server URL]      < token

`login` signs in with Speckle's public connector app: the browser comes back to a loopback receiver on this
machine (or, with `--paste` or a busy port, the user pastes the address the browser ended on). Nothing here
prints a token; `revoke` reads its token from standard input, never from the command line, which other users
of the machine can see. Exit status: 0 done, 1 failed (with a one-line reason on stderr), 2 misused, 130
interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TextIO

import httpx

from . import _credentials as credentials
from . import _protocol as protocol
from ._errors import LoginDenied, LogoutFailed, SpeckleAuthError
from ._protocol import TokenPair, WhoAmI
from ._public_app import revoke_unheld
from ._redirect_file import RedirectFile
from ._transport import DEFAULT_TIMEOUT, call, ssl_context

if TYPE_CHECKING:
    from ._public_app import PublicLogin
    from ._sources import Candidate

__all__ = ["main"]

_PROG = "speckle-nb-auth"
_RUN = "python -m speckle_nb_auth"  # works wherever the package does, console script or not
# Anything token-shaped in a command line is hidden in argparse's complaints, which repeat what they refuse.
_SECRETISH = re.compile(r"[A-Za-z0-9_\-]{24,}")
_DEFAULT = "default: SPECKLE_SERVER, a .env file's, or app.speckle.systems"


class _Console:
    def __init__(self, out: TextIO, err: TextIO, inp: TextIO) -> None:
        self.out, self.err, self.inp = out, err, inp

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def fail(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def ask(self, prompt: str) -> str | None:
        """A line typed or piped in; None at the end of input."""
        print(prompt, end="", file=self.out, flush=True)
        line = self.inp.readline()
        return line if line else None


def _clean(text: str | None) -> str:
    """A server-supplied value as it may reach a terminal: printable characters only (no escape sequences)."""
    return "".join(ch for ch in text or "" if ch.isprintable())


def _who(who: WhoAmI) -> str:
    email = f" <{_clean(who.user.email)}>" if who.user.email else ""
    return f"{_clean(who.user.name) or who.user.id}{email}"


def _http() -> httpx.Client:
    return httpx.Client(timeout=DEFAULT_TIMEOUT, verify=ssl_context())


def _server(given: str | None) -> str:
    from ._sources import default_server

    return protocol.typed_server_url(given) if given else default_server()


# --- login ----------------------------------------------------------------------------------------------------


def _login(args: argparse.Namespace, io: _Console) -> int:
    from ._public_app import public_login
    from ._receiver import PortBusy

    server = _server(args.server)
    if args.env_file is None and not credentials.keyring_available():
        raise _Failed(
            "No keyring works on this machine, so a sign-in made here could not be remembered: nothing was opened. "
            f"Run `{_RUN} login --env-file` to keep it in a .env file readable only by you (and ignored by git in "
            f"a repository), or make a personal access token at {server}/settings and set SPECKLE_TOKEN to it "
            f"and SPECKLE_SERVER={server} in the environment."
        )
    login = public_login(server)
    receiver = None
    if args.paste:
        login.check_port()
    else:
        try:
            receiver = login.listen(back_to="the terminal")
        except PortBusy as err:
            io.say(err.message)
    if receiver is None:
        with RedirectFile(login.authorize_url) as page:
            _show(io, login.authorize_url, page if not args.no_browser else None, anywhere=True)
            code = _pasted_code(io, login)
    else:
        with receiver, RedirectFile(login.authorize_url) as page:
            _show(io, login.authorize_url, page if not args.no_browser else None)
            io.say("Waiting for you to sign in (up to 10 minutes; Ctrl-C cancels)...")
            received = receiver.wait()
        if received is None or received.kind == "cancelled":
            raise KeyboardInterrupt
        if received.kind == "denied":
            raise LoginDenied("You chose not to allow access on Speckle's page: nothing was signed in.")
        if received.kind == "expired" or received.code is None:
            io.fail("Nobody signed in within 10 minutes, when Speckle's sign-in expires: run login again.")
            return 1
        code = received.code
    with _http() as http:
        pair = login.exchange(code, http=http)
        try:
            who = call(http, protocol.whoami(server, pair.token))
        except SpeckleAuthError:
            revoke_unheld(server, pair, http=http)  # a token nobody can use is not left valid
            raise
        io.say(f"Signed in to {server} as {_who(who)}")
        _keep(io, http, server, who, pair, args.env_file)
    return 0


def _show(io: _Console, url: str, page: RedirectFile | None, *, anywhere: bool = False) -> None:
    """Open the sign-in page through a file only this user can read (never the address on a command line),
    else print the address; `anywhere`: the answer is pasted, so any machine's browser will do."""
    if page is not None and page.open():
        io.say("Speckle's sign-in page is opening in your browser.")
        return
    where = "in a browser, on this machine or another," if anywhere else "in a browser on this machine"
    io.say(f"Open this address {where} and sign in:")
    io.say(url)


def _pasted_code(io: _Console, login: PublicLogin) -> str:
    from ._receiver import PasteNotUnderstood

    io.say(
        "After signing in, the browser ends on a page that may not load. Copy that page's whole address "
        "from the address bar and paste it here."
    )
    for _ in range(3):
        line = io.ask("Address: ")
        if line is None:
            break
        try:
            return login.code_from(line)
        except PasteNotUnderstood as err:
            io.say(err.message)
    raise _Failed("No sign-in address was pasted: run login again.")


def _keep(io: _Console, http: httpx.Client, server: str, who: WhoAmI, pair: TokenPair, env_file: str | None) -> None:
    if env_file is not None:
        from ._dotenv import remember_in_dotenv

        try:
            path = remember_in_dotenv(server, pair.token, env_file or None)
        except (SpeckleAuthError, OSError):
            revoke_unheld(server, pair, http=http)
            raise
        from ._dotenv import git_state

        ignored = ", ignored by git" if git_state(path) == "ignored" else ""
        io.say(f"Saved to {path} (readable only by you{ignored}): programs started in this folder sign in from it.")
        return
    try:
        credentials.remember(server, who.user.id, pair)
    except credentials.KeyringUnavailable:
        revoke_unheld(server, pair, http=http)
        io.say(
            "No keyring works on this machine, so this sign-in could not be remembered and was revoked again. "
            f"Run `{_RUN} login --env-file` to keep it in a .env file readable only by you that git ignores, "
            f"or make a personal access token at {server}/settings and set SPECKLE_TOKEN to it and "
            f"SPECKLE_SERVER={server} in the environment."
        )
        return
    how = "" if server == _server(None) else f" with login({server!r}) or SPECKLE_SERVER={server}"
    io.say(f"Remembered in this machine's keyring: notebooks and scripts here now sign in without asking{how}.")


# --- status ---------------------------------------------------------------------------------------------------


def _where(candidate: Candidate) -> str:
    return {
        "environment": "SPECKLE_TOKEN in the environment",
        "keyring": "this machine's keyring",
    }.get(candidate.source, candidate.description)


def _status(args: argparse.Namespace, io: _Console) -> int:
    from ._client import Client
    from ._rotation import rotation_message, token_age
    from ._sources import candidates, not_signed_in

    problems: list[str] = []
    working = 0
    named = protocol.typed_server_url(args.server) if args.server else None
    for candidate in candidates(named, problems):
        try:
            client = Client(candidate.server, candidate.pair.token, candidate.pair.refresh_token)
        except SpeckleAuthError as err:
            io.say(f"{candidate.server}: the sign-in from {_where(candidate)} does not work: {err.message}")
            continue
        working += 1
        with client:
            email = f" <{_clean(client.user.email)}>" if client.user.email else ""
            io.say(f"Signed in to {client.url} as {_clean(client.user.name)}{email}, from {_where(candidate)}")
            age = token_age(client)
            if age is not None:
                io.say(f"  Token: personal access token, {age.describe()}.")
                notice = rotation_message(age, client.url)
                if notice:
                    io.say(f"  {notice}")
            elif candidate.pair.refresh_token or _saved_by_login(candidate):
                io.say("  Token: a \u201cLog in with Speckle\u201d sign-in (app tokens have no age to show).")
            else:
                io.say("  Token: its age is not readable (an app token, or a personal one without tokens:read).")
        for notice in _source_notices(candidate):
            io.say(f"  {notice}")
    for problem in problems:
        io.say(problem)
    if working:
        return 0
    io.fail(not_signed_in(named).message + f" Or run: {_RUN} login")
    return 1


def _saved_by_login(candidate: Candidate) -> bool:
    """A .env sign-in that `login --env-file` made (its token is an app token, without a refresh token)."""
    from ._dotenv import saved_by_login

    return candidate.path is not None and saved_by_login(candidate.path)


def _source_notices(candidate: Candidate) -> list[str]:
    """What `status` adds about where a sign-in came from (a .env file git may publish)."""
    if candidate.path is None:
        return []
    from ._dotenv import dotenv_notices

    return dotenv_notices(candidate.path)


# --- logout and revoke ----------------------------------------------------------------------------------------


def _logout(args: argparse.Namespace, io: _Console) -> int:
    server = _server(args.server)
    remembered = credentials.recall(server)
    with _http() as http:
        for user_id, pair in remembered:
            _revoke_quietly(http, server, pair)
            credentials.forget(server, user_id)
        saved = _logout_dotenv(io, http, server)
    if remembered:
        io.say(f"Logged out of {server}: the remembered sign-in was revoked and forgotten.")
    elif not saved:
        io.say(f"No sign-in to {server} is remembered on this machine: nothing to log out.")
    if credentials.from_environment(server) is not None:
        io.say(
            f"SPECKLE_TOKEN is still set for {server} and was left alone: unset it to stop using it, or revoke "
            f"it with: {_RUN} revoke"
        )
    return 0


def _revoke_quietly(http: httpx.Client, server: str, pair: TokenPair) -> None:
    try:
        call(http, protocol.logout(server, pair.token, pair.refresh_token))
    except LogoutFailed:
        pass  # already invalid on the server: forgetting it is all that is left


def _logout_dotenv(io: _Console, http: httpx.Client, server: str) -> bool:
    """The sign-in of the nearest .env file, for `server`: revoked and removed when `login --env-file` saved
    it; left alone, and said, when the person put it there. True when there was one."""
    from ._dotenv import forget_in_dotenv, read_dotenv, saved_by_login

    found = read_dotenv()
    if found is None or found.token is None:
        return False
    try:
        if (protocol.normalize_server_url(found.server) if found.server else _server(None)) != server:
            return False
    except SpeckleAuthError:
        return False
    if not saved_by_login(found.path):
        io.say(f"SPECKLE_TOKEN in {found.path} was left alone: you put it there, and it may be in use elsewhere. "
               f"To end it, remove it from the file, or revoke it everywhere with: {_RUN} revoke < {found.path}")
        return True
    _revoke_quietly(http, server, TokenPair(found.token))
    forget_in_dotenv(found.path)
    io.say(f"Logged out of {server}: the sign-in saved in {found.path} was revoked and removed from it.")
    return True


def _read_token(io: _Console) -> str:
    if io.inp.isatty():
        return getpass.getpass("Token to revoke (not shown as you type): ")
    return io.inp.read(64 * 1024)  # a token, or a whole .env file


def _revoke_command(args: argparse.Namespace, io: _Console) -> int:
    from ._revoke import revoke

    if args.stray:
        raise _Failed(
            "Do not put a token on the command line: other users of this machine can see it there and it "
            f"stays in your shell history, so treat that one as seen. Pipe it in (for example: {_RUN} revoke "
            "< token.txt) or paste it when asked."
        )
    server = protocol.typed_server_url(args.server) if args.server else None
    io.say(str(revoke(_read_token(io), server)))
    return 0


# --- the parser ------------------------------------------------------------------------------------------------


class _Failed(Exception):
    """A command failed for a reason already put in words."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {_SECRETISH.sub('[hidden]', message)}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=_PROG, description="Sign in to Speckle from a terminal, for notebooks and scripts.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    login = commands.add_parser("login", help="sign in with Speckle in the browser and remember it")
    login.add_argument("server", nargs="?", help=f"the Speckle server ({_DEFAULT})")
    login.add_argument("--no-browser", action="store_true", help="print the sign-in address instead of opening it")
    login.add_argument(
        "--paste", action="store_true",
        help="paste the address the browser ends on (when the browser runs on another machine)",
    )
    login.add_argument(
        "--env-file", nargs="?", const="", metavar="PATH",
        help="remember the sign-in in a .env file readable only by you that git ignores (default: the nearest "
        ".env, else ./.env) instead of the keyring",
    )
    login.set_defaults(run=_login)

    status = commands.add_parser("status", help="who is signed in, where, and from where")
    status.add_argument("server", nargs="?", help="the Speckle server to look at")
    status.set_defaults(run=_status)

    logout = commands.add_parser("logout", help="revoke and forget the remembered sign-in of a server")
    logout.add_argument("server", nargs="?", help=f"the Speckle server ({_DEFAULT})")
    logout.set_defaults(run=_logout)

    revoke = commands.add_parser("revoke", help="revoke a token read from standard input (a leaked one)")
    revoke.add_argument("--server", help=f"the server the token belongs to ({_DEFAULT})")
    revoke.add_argument("stray", nargs="*", help=argparse.SUPPRESS)
    revoke.set_defaults(run=_revoke_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    io = _Console(sys.stdout, sys.stderr, sys.stdin)
    run: Callable[[argparse.Namespace, _Console], int] = args.run
    try:
        return run(args, io)
    except KeyboardInterrupt:
        io.fail("Cancelled.")
        return 130
    except (SpeckleAuthError, _Failed) as err:
        io.fail(str(err))
        return 1
