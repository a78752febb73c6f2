"""Speckle's public connector app (`sca`): "Log in with Speckle" on any server, with nothing registered. The one
place a public-app sign-in is made, for the terminal, the kernel and the server extension alike.

Every Speckle server has the app `sca` ("Speckle Connector", secret `sca`, trusted: no consent page), which
Speckle's desktop connectors sign in with by listening on its redirect URL. Its port and path are asked of the
server (the public `app(id: "sca")` query), never assumed. Because its secret is public, PKCE is what makes an
intercepted code worthless: each `PublicLogin` makes a fresh verifier, keeps it to itself, and is the only one
that can exchange the code its sign-in produces. It owns both ways the code comes back (`listen` on the app's
loopback redirect; `code_from` the address the person pastes), the exchange, and, in this module, the renewal
(`refresh`) and the taking back of a pair nobody will hold (`revoke_unheld`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from . import _protocol as protocol
from ._errors import ConfigurationError, RefreshRejected
from ._port_owner import check_redirect_not_held_by_another
from ._protocol import Secret, TokenPair, mask
from ._receiver import CODE_LIFETIME, LoopbackReceiver, Received, code_from_pasted
from ._transport import DEFAULT_TIMEOUT, acall, call, ssl_context

__all__ = [
    "PUBLIC_APP_ID",
    "PUBLIC_APP_SECRET",
    "ConnectorApp",
    "NoPublicApp",
    "PublicLogin",
    "aconnector_app",
    "apublic_login",
    "arefresh",
    "arevoke_unheld",
    "connector_app",
    "public_login",
    "refresh",
    "revoke_unheld",
]

PUBLIC_APP_ID = "sca"
PUBLIC_APP_SECRET = "sca"  # public by design: the same on every Speckle server


class NoPublicApp(ConfigurationError):
    code = "no_public_app"


@dataclass(frozen=True)
class ConnectorApp:
    """The public facts of the connector app on one server."""

    redirect_url: str
    scopes: tuple[str, ...]
    name: str

    def lacks(self, wanted: Iterable[str]) -> tuple[str, ...]:
        """The wanted scopes this app's tokens will not hold, in the order asked."""
        return tuple(s for s in dict.fromkeys(wanted) if s not in self.scopes)

    def lacking_message(self, wanted: Iterable[str]) -> str | None:
        """What to tell the user before the sign-in tab opens, when the app cannot give what is wanted."""
        missing = self.lacks(wanted)
        if not missing:
            return None
        plural = "s" if len(missing) > 1 else ""
        return (
            f"Signing in with {self.name} gives a token without the scope{plural} this notebook asks for: "
            f"{', '.join(missing)}. Use a personal access token that has them, or an app registered with them."
        )


def _parse(server: str, answer: dict[str, object] | None) -> ConnectorApp:
    found = answer or {}
    redirect = found.get("redirectUrl")
    if not isinstance(redirect, str) or not redirect:
        raise NoPublicApp(
            f"{server} has no public Speckle Connector app, so \u201cLog in with Speckle\u201d cannot work there "
            "without a registered app: sign in with a personal access token (made at "
            f"{server}/settings) instead."
        )
    listed = found.get("scopes")
    entries = listed if isinstance(listed, list) else []
    scopes = tuple(s["name"] for s in entries if isinstance(s, dict) and isinstance(s.get("name"), str))
    name = found.get("name")
    return ConnectorApp(redirect, scopes, name if isinstance(name, str) and name else "Speckle Connector")


def _new_http() -> httpx.Client:
    return httpx.Client(timeout=DEFAULT_TIMEOUT, verify=ssl_context())


def connector_app(server: str, *, http: httpx.Client | None = None) -> ConnectorApp:
    """The connector app of `server` (its redirect URL, scopes, name), asked of the server anonymously."""
    url = protocol.normalize_server_url(server)
    op = protocol.app_info(url, PUBLIC_APP_ID)
    if http is not None:
        return _parse(url, call(http, op))
    with _new_http() as own:
        return _parse(url, call(own, op))


async def aconnector_app(server: str, *, http: httpx.AsyncClient) -> ConnectorApp:
    url = protocol.normalize_server_url(server)
    return _parse(url, await acall(http, protocol.app_info(url, PUBLIC_APP_ID)))


class PublicLogin:
    """One sign-in with the connector app: a fresh verifier, the address to open, and the code exchange.
    Make one per login and drop it afterwards; its verifier never leaves this object except in the
    authorize URL's challenge (Speckle compares challenges as plain text)."""

    def __init__(self, server: str, app: ConnectorApp) -> None:
        self.server = protocol.normalize_server_url(server)
        self.app = app
        self._verifier = protocol.make_verifier()
        self._challenge = protocol.challenge_for(self._verifier, "plain")

    @property
    def authorize_url(self) -> str:
        """Where the browser signs in; holds the challenge, so it goes to the user's browser and nowhere else."""
        return protocol.authorize_url(self.server, PUBLIC_APP_ID, self._challenge)

    @property
    def challenge(self) -> str:
        return self._challenge

    def listen(
        self,
        on_result: Callable[[Received], None] | None = None,
        *,
        back_to: str = "the notebook",
        return_url: str | None = None,
        lifetime: float = CODE_LIFETIME,
    ) -> LoopbackReceiver:
        """The first way the code comes back: listen on the app's loopback redirect for this sign-in's answer.
        Raises `PortBusy` when this user's program holds the port and `ConfigurationError` when the redirect is
        no loopback address: then the person pastes the address instead (`code_from`). Raises
        `PortHeldByAnother` when another user of the machine holds it: then no sign-in may start."""
        receiver = LoopbackReceiver(self.app.redirect_url, lifetime=lifetime, return_url=return_url,
                                    on_result=on_result, back_to=back_to)
        return receiver.start()

    def check_port(self) -> None:
        """For a sign-in whose answer is pasted, so listens nowhere: raise `PortHeldByAnother` when another
        user of this machine listens where Speckle will send the browser, before anything is opened."""
        check_redirect_not_held_by_another(self.app.redirect_url)

    @staticmethod
    def code_from(pasted: str) -> str:
        """The second way: the code in the address the sign-in tab ended on, as the person pasted it (or the bare
        code). Raises `PasteNotUnderstood`, or `LoginDenied` for an address saying access was declined."""
        return code_from_pasted(pasted)

    def exchange(self, code: str, *, http: httpx.Client | None = None) -> TokenPair:
        """Trade the access code the redirect brought for a token pair (raises `AccessCodeRejected`)."""
        code = Secret(code)  # what a failing line of this frame shows
        op = self._exchange_call(code)
        if http is not None:
            return call(http, op)
        with _new_http() as own:
            return call(own, op)

    async def aexchange(self, code: str, *, http: httpx.AsyncClient) -> TokenPair:
        code = Secret(code)
        return await acall(http, self._exchange_call(code))

    def _exchange_call(self, code: str) -> protocol.Call[TokenPair]:
        return protocol.exchange_code(self.server, PUBLIC_APP_ID, PUBLIC_APP_SECRET, code, self._verifier)

    def __repr__(self) -> str:
        return f"PublicLogin(server={self.server!r}, app={PUBLIC_APP_ID!r}, challenge={mask(self._challenge)})"


def public_login(server: str, *, http: httpx.Client | None = None) -> PublicLogin:
    """A new login with the connector app of `server` (its redirect URL asked of the server)."""
    return PublicLogin(server, connector_app(server, http=http))


async def apublic_login(server: str, *, http: httpx.AsyncClient) -> PublicLogin:
    return PublicLogin(server, await aconnector_app(server, http=http))


def refresh(server: str, pair: TokenPair) -> TokenPair:
    """Renew a pair the connector app issued: its secret is public, so whoever holds the pair renews it."""
    if pair.refresh_token is None:
        raise RefreshRejected("This sign-in cannot be renewed: log in again.")
    with httpx.Client(timeout=10.0, verify=ssl_context()) as http:
        return call(http, protocol.refresh(server, PUBLIC_APP_ID, PUBLIC_APP_SECRET, pair.refresh_token))


async def arefresh(http: httpx.AsyncClient, server: str, refresh_token: str) -> TokenPair:
    return await acall(http, protocol.refresh(server, PUBLIC_APP_ID, PUBLIC_APP_SECRET, Secret(refresh_token)))


def revoke_unheld(server: str, pair: TokenPair, *, http: httpx.Client | None = None) -> None:
    """Take back a pair that was issued but that nobody will hold (its panel is gone, its sign-in failed after
    the exchange): never left valid. Best effort: never raises."""
    try:
        op = protocol.logout(server, pair.token, pair.refresh_token)
        if http is not None:
            call(http, op)
            return
        with httpx.Client(timeout=5.0, verify=ssl_context()) as own:
            call(own, op)
    except Exception:  # noqa: BLE001, S110 - best effort: the caller has already said what went wrong
        pass


async def arevoke_unheld(http: httpx.AsyncClient, server: str, pair: TokenPair) -> bool:
    """`revoke_unheld` on an event loop; False when the server could not be told."""
    try:
        await acall(http, protocol.logout(server, pair.token, pair.refresh_token))
    except Exception:  # noqa: BLE001 - best effort, and said by the caller
        return False
    return True
