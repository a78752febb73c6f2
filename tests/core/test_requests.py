"""What the login routes answer (`core._requests.Routes`), without a web server: the answers the extension and the
hub's service both write, and the hooks the hub varies them with. The emulator plays Speckle over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from support.speckle import code_of, consent

from speckle_nb_auth._secret import Secret
from speckle_nb_auth.core._config import read_servers
from speckle_nb_auth.core._flows import FlowStore
from speckle_nb_auth.core._logins import Logins
from speckle_nb_auth.core._pages import Page
from speckle_nb_auth.core._requests import Reply, Routes, refused
from speckle_nb_auth.core._wire import read_claim, read_renewal
from speckle_nb_auth.emulator import Emulator

FLOW = "flow-aaaaaaaaaaaaaaaa"
OTHER = "flow-bbbbbbbbbbbbbbbb"
BOX = "m" * 24
T = TypeVar("T")


class Owned(Routes):
    """Routes varied by the hooks as a host with several users varies them: a login and a refresh token are
    their holder's alone."""

    def __init__(self, logins: Logins, log: logging.Logger) -> None:
        super().__init__(logins, log)
        self.flows: dict[str, str | None] = {}
        self.tokens: dict[str, str | None] = {}

    def visible(self, flow_id: str, who: str | None) -> bool:
        return self.flows.get(flow_id) == who

    def started(self, flow_id: str, who: str | None) -> None:
        self.flows[flow_id] = who

    def handed_out(self, refresh_token: str | None, who: str | None) -> None:
        if refresh_token:
            self.tokens[refresh_token] = who

    def may_renew(self, refresh_token: Any, who: str | None) -> Reply | None:
        if isinstance(refresh_token, str) and refresh_token and self.tokens.get(refresh_token) != who:
            return refused(403, "not_yours", "Not yours.")
        return None  # a request without one is refused by the core itself


def run(emulator: Emulator, test: Callable[[Owned], Awaitable[T]]) -> T:
    """`test` with routes over a fresh broker for the emulator's app, on an event loop of its own."""
    creds = emulator.credentials
    servers, problems = read_servers([{"url": emulator.url, "name": "Emulator", "app_id": creds["app_id"],
                                       "app_secret": creds["app_secret"]}])
    assert not problems

    async def main() -> T:
        async with httpx.AsyncClient(trust_env=False) as http:
            log = logging.getLogger("test.routes")
            return await test(Owned(Logins(servers, servers[0], FlowStore(), http, log=log), log))

    return asyncio.run(main())


async def signed_in_code(routes: Routes, emulator: Emulator, flow_id: str, who: str | None) -> str:
    """Start a login as `who` and consent on Speckle: the code Speckle sends back."""
    started = await routes.start(flow_id, emulator.url, who, replaces=None)
    assert isinstance(started, str), started
    return code_of(await asyncio.to_thread(consent, emulator, authorize_url=started))


def test_a_login_is_handed_over_once_to_whoever_started_it(emulator: Emulator) -> None:
    async def test(routes: Owned) -> None:
        code = await signed_in_code(routes, emulator, FLOW, "alice")
        assert await routes.callback(FLOW, code, False) == ""
        assert routes.flow(FLOW, "bob").status == 404  # another's login is as unknown as none
        assert routes.claim(FLOW, "bob").status == 404
        assert routes.cookie_flow_id(FLOW.encode(), "bob") is None
        assert routes.result("", FLOW, "bob").title == "No login in progress"
        status = routes.flow(FLOW, "alice")
        assert status == Reply(200, {"status": "done", "message": status.body["message"], "paste": False,
                                     "app": emulator.credentials["app_id"]})
        assert routes.result("", FLOW, "alice").title == "Signed in to Speckle"
        claimed = routes.claim(FLOW, "alice")
        found = read_claim(claimed.body, "")
        assert claimed.status == 200 and found is not None and found.server_url == emulator.url
        assert found.app_id == emulator.credentials["app_id"] and routes.tokens == {found.pair.refresh_token: "alice"}
        again = routes.claim(FLOW, "alice")
        assert again.status == 404 and again.body == {"error": "unknown_flow", "message": Routes.nothing_to_claim}
        assert routes.result("", FLOW, "alice").title == "Signed in to Speckle"  # the tab's page stays

    run(emulator, test)


def test_a_login_not_done_is_409_a_bad_id_400(emulator: Emulator) -> None:
    async def test(routes: Owned) -> None:
        await routes.start(FLOW, emulator.url, None, replaces=None)
        pending = routes.claim(FLOW, None)
        assert pending.status == 409 and pending.body == {
            "error": "not_done", "message": "This login has no token to hand over (it is pending)."}
        for answer in (routes.flow("x", None), routes.claim("x", None), await routes.paste("x", b"{}", None)):
            assert answer.status == 400 and answer.body["error"] == "bad_flow_id"
        refused_start = await routes.start("x", emulator.url, None, replaces=None)
        assert isinstance(refused_start, Page) and refused_start.status == 400 and refused_start.flow_id is None
        unknown = await routes.start(OTHER, "https://unknown.example", None, replaces=None)
        assert isinstance(unknown, Page) and unknown.flow_status == "failed" and unknown.flow_id == OTHER

    run(emulator, test)


def test_paste_back_exchanges_once_and_refuses_what_it_cannot_read(emulator: Emulator) -> None:
    async def test(routes: Owned) -> None:
        code = await signed_in_code(routes, emulator, FLOW, None)
        garbled = await routes.paste(FLOW, json.dumps({"pasted": "not an address"}).encode(), None)
        assert garbled.status == 400 and garbled.body["error"] == "paste_not_understood"
        assert "not an address" not in garbled.body["message"]  # never repeated: it may hold a code
        address = f"http://localhost:29363/?access_code={code}"
        assert await routes.paste(FLOW, json.dumps({"pasted": address}).encode(), "bob") == refused(
            404, "unknown_flow", "No login with this id is known here (it ended or never began).")
        assert await routes.paste(FLOW, json.dumps({"pasted": address}).encode(), None) == Reply(
            200, {"status": "done"})
        late = await routes.paste(FLOW, json.dumps({"pasted": address}).encode(), None)
        assert late.status == 409 and late.body["error"] == "not_pending"
        assert routes.claim(FLOW, None).status == 200

    run(emulator, test)


def test_a_refresh_token_renews_for_its_holder_alone(emulator: Emulator) -> None:
    async def test(routes: Owned) -> None:
        await routes.callback(FLOW, await signed_in_code(routes, emulator, FLOW, "alice"), False)
        pair = read_claim(routes.claim(FLOW, "alice").body, "")
        assert pair is not None
        body = json.dumps({"server_url": emulator.url, "refresh_token": pair.pair.refresh_token}).encode()
        assert await routes.refresh(body, "bob") == refused(403, "not_yours", "Not yours.")
        renewed = await routes.refresh(body, "alice")
        new = read_renewal(renewed.body)
        assert renewed.status == 200 and new is not None and new.token != pair.pair.token
        assert routes.tokens[str(new.refresh_token)] == "alice"  # the new refresh token is hers too
        junk = await routes.refresh(b"[[[", "alice")
        assert junk.status == 400 and junk.body["error"] == "bad_request"

    run(emulator, test)


def test_the_mailbox_takes_bounded_messages_and_gives_them_back_masked(emulator: Emulator) -> None:
    async def test(routes: Owned) -> None:
        assert routes.post_message("short", b"{}").body["error"] == "bad_box_id"
        assert routes.post_message(BOX, b'{"no": "type"}').body["error"] == "bad_message"
        assert routes.post_message(BOX, b'{"type": "x", "pad": "' + b"p" * 17_000 + b'"}').status == 400
        token = emulator.credentials["pat"]
        assert routes.post_message(BOX, json.dumps({"type": "pat", "token": token}).encode()) == Reply(
            200, {"posted": True})
        taken = await routes.take_messages(BOX, "1")
        [message] = taken.body["messages"]
        assert isinstance(message["token"], Secret) and message["token"] == token and token not in repr(taken.body)
        assert (await routes.take_messages(BOX, "not a number")).body == {"messages": []}
        for _ in range(routes.logins.mailboxes.max_messages):
            routes.post_message(BOX, b'{"type": "ready"}')
        assert routes.post_message(BOX, b'{"type": "ready"}').body["error"] == "mailbox_full"

    run(emulator, test)


def test_a_callback_that_fails_unexpectedly_is_a_page_and_logs_no_code(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def test(routes: Owned) -> Any:
        async def broken(*args: Any) -> None:
            raise RuntimeError("c" * 42)

        monkeypatch.setattr(routes.logins, "finish", broken)
        return await routes.callback(FLOW, "c" * 42, False)

    with caplog.at_level(logging.DEBUG):
        page = run(emulator, test)
    assert isinstance(page, Page) and page.status == 500 and page.title == "Login failed"
    assert "RuntimeError" in caplog.text and "c" * 42 not in caplog.text
