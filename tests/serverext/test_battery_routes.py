"""Bad input, property-based, against the extension's routes on a real Jupyter server with the emulator behind
it. Whatever arrives: never a 5xx, always an HTML page or JSON with a message, never a secret in an answer (or in
the server's log). `-s` shows the cases tried. The panel's half of this battery is
tests/kernel/test_battery_panel_messages.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.routes import BASE, TEST_CLIENT, Browser, Recorder, log_in_fully, start_login
from support.strategies import HEX, SETTINGS, hex42, huge, junk, long_in_url, resolve, server_urls

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp

tried: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_cases() -> Iterator[None]:
    yield
    print("\nroute cases tried:", ", ".join(f"{k}: {v}" for k, v in tried.items()),
          f"(total {sum(tried.values())})")


def count(name: str) -> None:
    tried[name] = tried.get(name, 0) + 1


# --- strategies ---------------------------------------------------------------------------------------------

def flow_ids() -> st.SearchStrategy[str]:
    return st.one_of(st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True), st.text(max_size=80), long_in_url)


def raw_query(raw: bytes) -> str:
    return "".join(f"%{byte:02X}" for byte in raw)


# --- checking an answer -------------------------------------------------------------------------------------


class Answers:
    """Checks every answer of the server: status, shape, and no secret anywhere in it."""

    def __init__(self, emu: Emulator) -> None:
        creds = emu.credentials
        self.secrets = {creds["app_secret"], creds["session_token"]}
        self.secrets |= {user["pat"] for user in creds["users"]} | {user["session_token"] for user in creds["users"]}
        self.statuses: dict[int, int] = {}

    def add_secret(self, *values: str | None) -> None:
        self.secrets |= {v for v in values if v and len(v) >= 16 and len(set(v)) >= 6}

    def check(self, reply: httpx.Response) -> None:
        status = reply.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        assert status < 500, (status, reply.request.method, str(reply.request.url)[:200], reply.text[:400])
        shown = reply.text + "\n" + "\n".join(f"{k}: {v}" for k, v in reply.headers.items())
        for secret in self.secrets:
            assert secret not in shown, "a secret in an answer"
        if status in (301, 302, 303, 307, 308):
            return
        kind = reply.headers.get("Content-Type", "")
        if kind.startswith("text/html"):
            assert re.search(r"<h1>[^<]+</h1>", reply.text), reply.text[:400]
            return
        assert kind.startswith("application/json"), (status, kind, reply.text[:200])
        body = reply.json()
        assert isinstance(body, dict)
        if status >= 400:
            assert isinstance(body.get("message"), str) and len(body["message"]) >= 5, body


@pytest.fixture
def answers(emulator: Emulator) -> Answers:
    return Answers(emulator)


@pytest.fixture
def run(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Any:
    """Run one example's coroutine on the Jupyter server's loop; the test's own HTTP client logs are its own."""

    def go(coro: Any) -> Any:
        async def marked() -> Any:
            TEST_CLIENT.set(True)
            return await coro

        return jp_asyncio_loop.run_until_complete(marked())

    return go


@pytest.fixture
def good_tokens(browser: Browser, emulator: Emulator, answers: Answers, run: Any) -> dict[str, str]:
    """A real login, claimed and refreshed: its tokens must never show up again."""

    async def sign_in() -> dict[str, str]:
        assert (await log_in_fully(browser, emulator, "good-flow-0000000000")).status_code == 200
        claim = (await browser.post("speckle-auth/flows/good-flow-0000000000/claim")).json()
        body = {"server_url": emulator.url, "refresh_token": claim["refresh_token"]}
        fresh = (await browser.post("speckle-auth/refresh", body)).json()
        return {"token": claim["token"], "refresh_token": claim["refresh_token"], "new_token": fresh["token"],
                "new_refresh_token": fresh["refresh_token"]}

    tokens = run(sign_in())
    answers.add_secret(*tokens.values())
    return tokens


def assert_log_clean(server_log: Recorder, answers: Answers, *extra: str, since: int = 0) -> None:
    """No known secret anywhere in the log; `extra` (this example's code) not in what came after `since`: an
    earlier example may have sent the same text as a parameter that is no secret (Hypothesis reuses strings)."""
    for secret in answers.secrets:
        assert secret not in server_log.text(), "a secret in the server's log"
    log = server_log.text(since)
    for secret in {e for e in extra if len(e) >= 16 and len(set(e)) >= 6}:
        assert secret not in log, "this example's code in the server's log"


# --- the callback -------------------------------------------------------------------------------------------

callback_params = st.fixed_dictionaries(
    {},
    optional={
        "access_code": st.one_of(hex42, st.text(max_size=60), st.text(alphabet=HEX, max_size=80),
                                 st.builds(lambda n: "c" * n, st.integers(100, 6000))),
        "denied": st.one_of(st.just("true"), st.just("false"), st.text(max_size=10)),
        "state": st.text(max_size=20),
        "error": st.text(max_size=20),
    },
)


@settings(max_examples=120, **SETTINGS)
@given(params=callback_params, raw=st.none() | st.binary(max_size=40),
       cookie=st.sampled_from(["pending", "none", "done"]))
@example(params={}, raw=b"\xff\xfe", cookie="pending")
@example(params={"denied": "true"}, raw=b"\xc3", cookie="pending")
def test_the_callback_answers_any_parameters_with_a_page(
    browser: Browser, emulator: Emulator, ext: SpeckleAuthApp, answers: Answers, good_tokens: dict[str, str],
    server_log: Recorder, callback_url: str, run: Any, params: dict[str, str], raw: bytes | None, cookie: str
) -> None:
    count("callback parameters")
    since = server_log.mark()

    async def one() -> None:
        if cookie == "none":  # this browser started no login (or its cookie is gone)
            jar = browser.http.cookies.jar
            for found in [c for c in jar if c.name.startswith("speckle-auth-flow-")]:
                jar.clear(found.domain, found.path, found.name)
        else:
            flow = f"prop-flow-{tried['callback parameters']:012d}"
            if cookie == "pending":
                await start_login(browser, emulator, flow)
            else:
                await log_in_fully(browser, emulator, flow)
        exchanges = emulator.requests_seen("/auth/token")
        query = urlencode(params)
        if raw is not None:
            query = "&".join(q for q in (query, f"access_code={raw_query(raw)}") if q)
        reply = await browser.http.get(f"{callback_url}?{query}" if query else callback_url)
        answers.check(reply)
        if reply.status_code == 302:
            location = reply.headers["Location"]
            assert location.startswith(f"{BASE}speckle-auth/result") and "access_code" not in location
            page = await browser.http.get(httpx.URL(browser.origin).join(location))
            answers.check(page)
            assert page.status_code != 302 and page.headers["Content-Type"].startswith("text/html")
        # a code is exchanged only for a pending flow named by the cookie, and only once
        assert emulator.requests_seen("/auth/token") - exchanges <= (1 if cookie == "pending" else 0)

    run(one())
    code = params.get("access_code", "")
    # the same text sent as another parameter (Hypothesis reuses strings) is that parameter's, not the code's
    others = [value for key, value in params.items() if key != "access_code"]
    assert_log_clean(server_log, answers, *([] if any(code in value for value in others) else [code]), since=since)


# --- login, result, flows, claim ------------------------------------------------------------------------------


@settings(max_examples=120, **SETTINGS)
@given(server=st.none() | server_urls | long_in_url, flow=st.none() | flow_ids(),
       problem=st.none() | st.text(max_size=20))
@example(server="EMULATOR", flow="a" * 16, problem=None)
def test_login_and_result_answer_any_parameters(
    browser: Browser, emulator: Emulator, answers: Answers, good_tokens: dict[str, str], server_log: Recorder,
    run: Any, server: str | None, flow: str | None, problem: str | None
) -> None:
    count("login parameters")

    async def one() -> None:
        params = {k: v for k, v in (("server", server and resolve(emulator, server)), ("flow", flow)) if v is not None}
        reply = await browser.http.get(f"{BASE}speckle-auth/login", params=params)
        answers.check(reply)
        if reply.status_code == 302:  # only ever to the configured server's sign-in page
            assert reply.headers["Location"].startswith(f"{emulator.url}/authn/verify/")
        result = await browser.http.get(f"{BASE}speckle-auth/result",
                                        params={} if problem is None else {"problem": problem})
        answers.check(result)

    run(one())
    assert_log_clean(server_log, answers)


@settings(max_examples=120, **SETTINGS)
@given(flow=flow_ids(), xsrf=st.booleans())
@example(flow="good-flow-0000000000", xsrf=True)
@example(flow="..", xsrf=True)
@example(flow="%ff", xsrf=True)
def test_flow_status_and_claim_answer_any_id(
    browser: Browser, emulator: Emulator, answers: Answers, good_tokens: dict[str, str], server_log: Recorder,
    run: Any, flow: str, xsrf: bool
) -> None:
    count("flow ids")

    async def one() -> None:
        path = f"{BASE}speckle-auth/flows/{quote(flow, safe='') if flow != '%ff' else flow}"
        answers.check(await browser.http.get(path))
        headers = {"X-XSRFToken": browser.xsrf} if xsrf else {}
        claim = await browser.http.post(f"{path}/claim", headers=headers)
        answers.check(claim)
        assert claim.status_code != 200, "a token handed over for an id never given out"

    run(one())
    assert_log_clean(server_log, answers)


# --- refresh ------------------------------------------------------------------------------------------------

refresh_bodies = st.one_of(
    junk.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"server_url": st.one_of(server_urls, junk), "refresh_token": st.one_of(hex42, st.text(max_size=60), huge,
                                                                                junk)},
        optional={"token": hex42, "app_secret": st.text(max_size=12)},
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.tuples(st.sampled_from(["nested arrays", "nested objects", "long refresh token"]), st.integers(1, 50_000)),
)


def body_of(described: bytes | tuple[str, int]) -> bytes:
    """Big bodies are described (kind, size), so that a failing example prints small."""
    if isinstance(described, bytes):
        return described
    kind, n = described
    if kind == "nested arrays":
        return b"[" * n + b"]" * n
    if kind == "nested objects":
        return b'{"a":' * n + b"1" + b"}" * n
    return b'{"server_url": "EMULATOR", "refresh_token": "' + b"r" * n * 10 + b'"}'


@settings(max_examples=200, **SETTINGS)
@given(described=refresh_bodies)
@example(described=("nested arrays", 100_000))
@example(described=("long refresh token", 30_000))
@example(described=b"")
def test_refresh_answers_any_body_with_json_and_a_message(
    browser: Browser, emulator: Emulator, answers: Answers, good_tokens: dict[str, str], server_log: Recorder,
    run: Any, described: bytes | tuple[str, int]
) -> None:
    count("refresh bodies")
    body = body_of(described)
    body = body.replace(b'"EMULATOR"', json.dumps(emulator.url).encode())
    for name in ("EMULATOR/", "EMULATOR_HOST", "EMULATOR_UPPER", "EMULATOR"):
        body = body.replace(json.dumps(name).encode(), json.dumps(resolve(emulator, name)).encode())

    async def one() -> None:
        reply = await browser.http.post(
            f"{BASE}speckle-auth/refresh", content=body,
            headers={"X-XSRFToken": browser.xsrf, "Content-Type": "application/json"},
        )
        answers.check(reply)
        assert reply.status_code != 200, "a refresh token never issued was renewed"
        assert reply.headers["Content-Type"].startswith("application/json")

    run(one())
    assert_log_clean(server_log, answers)
