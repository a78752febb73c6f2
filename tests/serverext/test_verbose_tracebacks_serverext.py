"""No secret in a verbose traceback, server-extension side and the sign-in modules: the code exchange (app secret,
access code, verifier), paste-back, the public app's exchange, the refresh route, the messages from the panel, the
loopback receiver's parsing, and the kernel's claims and renewals through its link. Each failure is formatted with
every frame's locals (`traceback.TracebackException(capture_locals=True)`), as a debugger or a log with
`exc_info` would show it, and must hold no token, refresh token, code, verifier or secret.

`Logins` is driven directly (no Tornado) against the emulator with faults injected; the kernel's link goes to a
real Jupyter server (pytest-jupyter) with the extension. An exchange that fails ends in a failed flow, not an
exception: the store records the error it was told of, with its traceback, where the failure was handled. A
test's own frame is in each traceback too, so it holds the secrets it handles as `Secret`s.
"""


from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from support.routes import (
    BASE,
)
from support.speckle import access_code, oauth_pair
from support.tracebacks import Seen, assert_no_secret, verbose_text

from speckle_nb_auth import _protocol as protocol
from speckle_nb_auth._browser_renewal import BrowserRenewal
from speckle_nb_auth._errors import (
    AccessCodeRejected,
    RefreshRejected,
    SpeckleAuthError,
    SpeckleServerError,
    SpeckleUnreachable,
)
from speckle_nb_auth._jupyter_link import JupyterLink
from speckle_nb_auth._link_logins import LinkLogins
from speckle_nb_auth._protocol import Secret, TokenPair
from speckle_nb_auth._public_app import PUBLIC_APP_ID, apublic_login, public_login
from speckle_nb_auth._receiver import PasteNotUnderstood, code_from_pasted
from speckle_nb_auth._session import Session
from speckle_nb_auth.core._config import SpeckleServer
from speckle_nb_auth.core._flows import Flow, FlowStore
from speckle_nb_auth.core._logins import Logins, Refused
from speckle_nb_auth.core._wire import read_body as json_body
from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.panel import _messages as messages

FLOW = "verbose-flow-000000000"


class RecordingStore(FlowStore):
    """A flow store that keeps the error each failed flow was failed for, as it was being handled."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    def fail(self, flow: Flow, code: str, message: str) -> None:
        handled = sys.exc_info()[1]
        if handled is not None:
            self.errors.append(handled)
        super().fail(flow, code, message)


def logins_for(emu: Emulator, client: httpx.AsyncClient, *, public: bool = False) -> Logins:
    creds = emu.credentials
    if public:
        server = SpeckleServer(emu.url, "Emulator", public_app=True)
    else:
        server = SpeckleServer(emu.url, "Emulator", creds["app_id"], creds["app_secret"])
    return Logins([server], server, RecordingStore(), client, allow_http=True,
                  log=logging.getLogger("test.verbose"))


async def started(logins: Logins, emu: Emulator, seen: Seen, flow_id: str = FLOW) -> str:
    """Start a login (paste-back for the public app: no receiver); returns its challenge (= the verifier)."""
    url = await logins.start(emu.url, flow_id, replaces=None, browser_is_local=False)
    challenge = Secret(unquote(urlsplit(url).path.rsplit("/", 1)[1]))
    flow = logins.store.get(flow_id)
    assert flow is not None
    seen.add(challenge, flow.verifier)
    return challenge


def check(err: BaseException, seen: Seen) -> str:
    text = verbose_text(err)
    assert_no_secret(text, seen.all())
    return text


def recorded(logins: Logins) -> BaseException:
    store = logins.store
    assert isinstance(store, RecordingStore)
    assert len(store.errors) == 1, store.errors
    return store.errors[0]


# --- the code exchange (registered app), through `finish` as the callback calls it ---------------------------


@pytest.mark.parametrize(("fault", "expected"), [("error", SpeckleServerError), ("drop", SpeckleUnreachable)])
async def test_a_failed_exchange_shows_no_code_verifier_or_app_secret(
    emulator: Emulator, fault: str, expected: type[BaseException]
) -> None:
    seen = Seen(emulator)
    async with httpx.AsyncClient() as client:
        logins = logins_for(emulator, client)
        challenge = await started(logins, emulator, seen)
        code = Secret(access_code(emulator, challenge))
        seen.add(code)
        emulator.inject_fault("/auth/token", fault)
        assert await logins.finish(FLOW, code, False) is None
    err = recorded(logins)
    assert isinstance(err, expected)
    text = check(err, seen)
    assert "access_code = '…" in text and "app_secret = '…" in text  # the frame's values, masked


async def test_a_refused_code_shows_no_code_or_verifier(emulator: Emulator) -> None:
    seen = Seen(emulator)
    async with httpx.AsyncClient() as client:
        logins = logins_for(emulator, client)
        await started(logins, emulator, seen)
        other = protocol.make_verifier()  # a code made for another login's challenge
        code = Secret(access_code(emulator, other))
        seen.add(other, code)
        await logins.finish(FLOW, code, False)
    assert isinstance(recorded(logins), AccessCodeRejected)
    check(recorded(logins), seen)


async def test_a_whoami_failing_after_the_exchange_shows_no_issued_token(emulator: Emulator) -> None:
    """Speckle issued the pair, then the who-am-I failed: the pair is revoked, and its frame shows it masked."""
    seen = Seen(emulator)
    async with httpx.AsyncClient() as client:
        logins = logins_for(emulator, client)
        challenge = await started(logins, emulator, seen)
        code = Secret(access_code(emulator, challenge))
        seen.add(code)
        issued_before = set(emulator.issued_secrets())
        emulator.inject_fault("/graphql", "error", status=502)
        await logins.finish(FLOW, code, False)
        revoked = emulator.requests_seen("/auth/logout")
    err = recorded(logins)
    assert isinstance(err, SpeckleServerError)
    text = check(err, seen)
    assert "tokens = TokenPair(token='…" in text
    assert revoked == 1 and set(emulator.issued_secrets()) <= issued_before | {code}


# --- paste-back and the public app's exchange -----------------------------------------------------------------


async def test_a_pasted_code_refused_shows_no_code_or_verifier(emulator: Emulator) -> None:
    seen = Seen(emulator)
    async with httpx.AsyncClient() as client:
        logins = logins_for(emulator, client, public=True)
        await started(logins, emulator, seen)
        other = protocol.make_verifier()
        code = Secret(access_code(emulator, other, app_id=PUBLIC_APP_ID))
        seen.add(other, code)
        pasted = Secret(f"{emulator.credentials['connector_redirect_url']}/?access_code={code}")
        with pytest.raises(Refused) as refused:
            await logins.finish_pasted(FLOW, str(pasted))  # plain, as the route's JSON has it
    assert refused.value.code == "challenge_mismatch"  # a code made for another login
    text = check(refused.value, seen)
    assert "pasted = '…" in text and "code = '…" in text
    assert isinstance(recorded(logins), AccessCodeRejected)  # the public `_exchange`'s own frames
    check(recorded(logins), seen)


async def test_a_public_exchange_failing_shows_no_code(emulator: Emulator) -> None:
    seen = Seen(emulator)
    async with httpx.AsyncClient() as client:
        logins = logins_for(emulator, client, public=True)
        challenge = await started(logins, emulator, seen)
        code = Secret(access_code(emulator, challenge, app_id=PUBLIC_APP_ID))
        seen.add(code)
        emulator.inject_fault("/auth/token", "error", status=502)
        with pytest.raises(Refused):
            await logins.finish_pasted(FLOW, str(code))
    assert isinstance(recorded(logins), SpeckleServerError)
    check(recorded(logins), seen)


def test_public_login_exchange_failing_shows_no_code_or_verifier(emulator: Emulator) -> None:
    seen = Seen(emulator)
    login = public_login(emulator.url)
    code = Secret(access_code(emulator, login.challenge, app_id=PUBLIC_APP_ID))
    seen.add(code, login.challenge)
    emulator.inject_fault("/auth/token", "drop")
    with pytest.raises(SpeckleUnreachable) as caught:
        login.exchange(str(code))  # a plain str, as a caller has it
    assert "code = '…" in check(caught.value, seen)


async def test_public_login_aexchange_failing_shows_no_code(emulator: Emulator) -> None:
    seen = Seen(emulator)
    async with httpx.AsyncClient() as client:
        login = await apublic_login(emulator.url, http=client)
        code = Secret(access_code(emulator, login.challenge, app_id=PUBLIC_APP_ID))
        seen.add(code, login.challenge)
        emulator.inject_fault("/auth/token", "error", status=502)
        with pytest.raises(SpeckleServerError) as caught:
            await login.aexchange(str(code), http=client)
    check(caught.value, seen)


def test_a_paste_not_understood_shows_no_code(emulator: Emulator) -> None:
    seen = Seen(emulator)
    code = Secret(access_code(emulator, protocol.make_verifier()))
    seen.add(code)
    pasted = [lambda: f"http://localhost:29363/?access_code={code}&access_code={code}", lambda: f"{code}0",
              lambda: f"http://[{code}"]  # made in the call: the test's frame holds no plain copy
    for paste in pasted:
        with pytest.raises(PasteNotUnderstood) as caught:
            code_from_pasted(paste())
        check(caught.value, seen)


# --- the refresh route ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("public", [False, True], ids=["registered-app", "public-app"])
async def test_the_refresh_route_failing_shows_no_refresh_token_or_secret(emulator: Emulator, public: bool) -> None:
    seen = Seen(emulator)
    pair = oauth_pair(emulator)
    seen.add(pair.token, pair.refresh_token)
    async with httpx.AsyncClient() as client:
        logins = logins_for(emulator, client, public=public)
        emulator.inject_fault("/auth/token", "error", status=502)
        with pytest.raises(SpeckleServerError) as failed:
            await logins.refresh(emulator.url, str(pair.refresh_token))
        assert "refresh_token = '…" in check(failed.value, seen)
        if not public:  # a refresh token Speckle no longer knows
            assert httpx.post(f"{emulator.url}/auth/logout", json={
                "token": pair.token, "refreshToken": pair.refresh_token}).status_code == 200
            with pytest.raises(RefreshRejected) as rejected:
                await logins.refresh(emulator.url, str(pair.refresh_token))
            check(rejected.value, seen)


def test_json_bodies_hold_their_secrets_masked(emulator: Emulator) -> None:
    token = emulator.credentials["pat"]
    body = json_body(f'{{"type": "pat", "token": "{token}", "refresh_token": "{token}", "pasted": "{token}"}}'
                     .encode())
    assert isinstance(body, dict)
    assert all(isinstance(body[key], Secret) and body[key] == token for key in ("token", "refresh_token", "pasted"))
    assert token not in repr(body) and body["type"] == "pat"


# --- the panel's messages ---------------------------------------------------------------------------------------


def test_a_refused_message_shows_no_token(emulator: Emulator) -> None:
    seen = Seen(emulator)
    pair = oauth_pair(emulator)
    seen.add(pair.token, pair.refresh_token)
    pat = Secret(emulator.credentials["pat"])
    # each message is made in the call, as the comm hands it over: the test's frame holds no plain copy
    refused = [
        lambda: {"type": "pat", "server": emulator.url, "token": f"{pat}0"},  # one character too many
        lambda: {"type": "pat", "server": emulator.url, "token": f"Bearer {pat}"},
        lambda: {"type": "oauth", "server_url": emulator.url, "token": str(pair.token), "refresh_token": "x y",
                 "app_id": "sca"},
        lambda: {"type": "oauth", "server_url": emulator.url, "token": str(pair.token),
                 "refresh_token": str(pair.refresh_token), "app_id": "not an app id"},
        lambda: {"type": "refreshed", "id": "request-id-1", "token": str(pair.token), "refresh_token": 42},
    ]
    for message in refused:
        with pytest.raises(messages.BadMessage) as caught:
            messages.parse(message())
        check(caught.value, seen)
    parsed = messages.parse({"type": "pat", "token": pat})
    assert isinstance(parsed, messages.Pat) and isinstance(parsed.token, Secret) and pat not in repr(parsed)


# --- the kernel's link: claims and renewals through the extension --------------------------------------------


class RaisingView:
    """A panel whose sign-in breaks once the claimed pair reached it."""

    panel_id, variable = "panel-of-the-test", "speckle"

    def sign_in_claimed(self, server: str, pair: TokenPair, app_id: str | None) -> None:
        raise RuntimeError("the panel broke")

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def linked_session(serverapp: Any, port: int) -> LinkLogins:
    """A session's link to the test's Jupyter server (no mailbox reader: nothing is posted to it)."""
    return LinkLogins(Session(None), JupyterLink(f"http://127.0.0.1:{port}{BASE}", serverapp.identity_provider.token))


async def test_the_kernels_claim_failing_shows_no_token(
    emulator: Emulator, ext: Any, jp_serverapp: Any, jp_http_port: int, http_server: Any
) -> None:
    from speckle_nb_auth._link_logins import _Flow

    seen = Seen(emulator)
    logins = ext.logins
    challenge = await started(logins, emulator, seen)
    code = Secret(access_code(emulator, challenge))
    seen.add(code)
    await logins.finish(FLOW, code, False)
    flow = logins.store.get(FLOW)
    assert flow is not None and flow.tokens is not None
    seen.add(flow.tokens.token, flow.tokens.refresh_token)
    linked = linked_session(jp_serverapp, jp_http_port)
    view = RaisingView()
    followed = _Flow(FLOW, emulator.url, lambda: view, 0.0)  # type: ignore[arg-type]

    def claim() -> None:
        with linked.link.client() as http:
            linked._claim(http, followed)

    with pytest.raises(RuntimeError) as caught:
        await asyncio.to_thread(claim)
    text = check(caught.value, seen)
    assert "pair = TokenPair(token='…" in text and "'token': '…" in text


@pytest.mark.parametrize("fault", ["error", "drop"])
async def test_a_renewal_through_the_link_failing_shows_no_refresh_token(
    emulator: Emulator, ext: Any, jp_serverapp: Any, jp_http_port: int, http_server: Any, fault: str
) -> None:
    seen = Seen(emulator)
    pair = oauth_pair(emulator)
    seen.add(pair.token, pair.refresh_token)
    linked = linked_session(jp_serverapp, jp_http_port)
    emulator.inject_fault("/auth/token", fault)
    with pytest.raises(RefreshRejected) as caught:
        await asyncio.to_thread(linked.renew, emulator.url, pair)
    text = check(caught.value, seen)
    assert "pair = TokenPair(token='…" in text
    assert isinstance(caught.value, SpeckleAuthError)


async def test_a_renewal_through_a_browser_view_that_never_answers_shows_no_refresh_token(
    emulator: Emulator,
) -> None:
    seen = Seen(emulator)
    pair = oauth_pair(emulator)
    seen.add(pair.token, pair.refresh_token)
    session = Session(None)
    renewal = BrowserRenewal(session)
    renewal.timeout = 0.2

    class SilentView(RaisingView):
        comm = object()

    view = SilentView()
    session.add_view(view)  # type: ignore[arg-type]
    session.view_ready(view, "page-of-the-test")  # type: ignore[arg-type]
    with pytest.raises(RefreshRejected) as caught:
        await asyncio.to_thread(renewal.renew, emulator.url, pair)
    check(caught.value, seen)
