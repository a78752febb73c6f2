"""The server extension over HTTP, the login from start to claim and refresh: a real Jupyter server
(pytest-jupyter, base_url `/a%40b/`) and the Speckle emulator, with a browser played by an httpx client that keeps
cookies and follows no redirect (support/routes.py; the fixtures are tests/serverext/conftest.py's).

The user's sign-in on Speckle is played with the emulator's backend route `/auth/accesscode` and the user's web
session token, which is what Speckle's consent page calls. Security: test_routes_security.py; configuration and
JupyterHub's redirect: test_routes_config.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Any

import pytest
from support.routes import (
    BASE,
    FLOW,
    FLOW2,
    PAT_ONLY,
    TEST_CLIENT,
    Browser,
    Recorder,
    callback,
    consent,
    log_in_fully,
    script_message,
    start_login,
    whoami,
)

import speckle_nb_auth
from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp

# --- status -------------------------------------------------------------------------------------------------


async def test_status_lists_the_servers_and_never_a_secret(browser: Browser, emulator: Emulator) -> None:
    # When
    reply = await browser.get("speckle-auth/status")
    # Then
    assert reply.status_code == 200
    assert reply.json() == {
        "version": speckle_nb_auth.__version__,
        "mailbox": True,
        "servers": [
            {"url": emulator.url, "name": "Emulator", "oauth": True, "app": "registered"},
            {"url": PAT_ONLY, "name": "PAT only", "oauth": False, "app": None},
        ],
        "default_server": emulator.url,
        "any_server": False,  # the public app is off here: only the servers set up sign in
    }
    creds = emulator.credentials
    assert creds["app_secret"] not in reply.text and creds["app_id"] not in reply.text
    assert reply.headers["Cache-Control"] == "no-store"


# --- the whole flow -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("challenge_method", ["plain", "S256"])
async def test_the_whole_login_hands_a_working_token_over_once(
    browser: Browser, emulator: Emulator, challenge_method: str
) -> None:
    # When: the panel opens the login tab, twice (the second login supersedes the first)
    await start_login(browser, emulator, FLOW)
    app_id, challenge = await start_login(browser, emulator, FLOW2)
    # Then: off to Speckle's sign-in page, with a challenge of the configured method
    assert app_id == emulator.credentials["app_id"]
    if challenge_method == "plain":
        assert re.fullmatch(r"[A-Za-z0-9_-]{64}", challenge)
    else:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge)
    first = await browser.get(f"speckle-auth/flows/{FLOW}")
    assert first.json()["status"] == "superseded"
    second = await browser.get(f"speckle-auth/flows/{FLOW2}")
    assert second.json() == {"status": "pending", "message": "", "paste": False,
                             "app": emulator.credentials["app_id"]}

    # When: the user authorizes on Speckle and comes back
    redirect = await consent(emulator, app_id, challenge)
    page = await callback(browser, redirect)

    # Then: the result page names the account (name and email: someone else's shows as not yours) and tells
    # the panel
    ada = emulator.credentials["users"][0]
    account = f"{ada['name']} ({ada['email']})"
    assert page.status_code == 200
    assert f"as {account}" in page.text and "close this tab" in page.text and "Not your account?" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW2, "status": "done"}
    status = await browser.get(f"speckle-auth/flows/{FLOW2}")
    assert status.json() == {"status": "done", "message": f"Signed in to Speckle as {account}.", "paste": False,
                             "app": emulator.credentials["app_id"]}
    assert emulator.requests_seen("/auth/token") == 1

    # When: the panel claims the token
    claim = await browser.post(f"speckle-auth/flows/{FLOW2}/claim")
    # Then: it works on Speckle, and it is handed over once
    assert claim.status_code == 200 and claim.headers["Cache-Control"] == "no-store"
    body = claim.json()
    assert set(body) == {"server_url", "token", "refresh_token", "app_id"} and body["server_url"] == emulator.url
    assert body["app_id"] == emulator.credentials["app_id"]  # public: it names the scopes the token holds
    assert (await whoami(emulator, body["token"]))["id"] == ada["id"]
    again = await browser.post(f"speckle-auth/flows/{FLOW2}/claim")
    assert again.status_code == 404 and again.json()["error"] == "unknown_flow"
    assert (await browser.get(f"speckle-auth/flows/{FLOW2}")).status_code == 404
    # the result page can still be shown (a reload, or a claim that came first), without any token
    reloaded = await browser.get("speckle-auth/result")
    assert reloaded.status_code == 200 and ada["name"] in reloaded.text

    # When: the panel refreshes the token
    fresh = await browser.post(
        "speckle-auth/refresh", {"server_url": emulator.url, "refresh_token": body["refresh_token"]}
    )
    # Then
    assert fresh.status_code == 200, fresh.text
    pair = fresh.json()
    assert set(pair) == {"token", "refresh_token"} and pair["token"] != body["token"]
    assert (await whoami(emulator, pair["token"]))["id"] == ada["id"]


async def test_the_login_cookie_is_signed_httponly_lax_and_scoped(
    browser: Browser, emulator: Emulator, jp_http_port: int
) -> None:
    # When
    reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
    # Then
    header = reply.headers["Set-Cookie"]
    name, value = header.split(";")[0].split("=", 1)
    digest = hashlib.sha256(BASE.encode()).hexdigest()[:10]
    assert name == f"speckle-auth-flow-{jp_http_port}-{digest}"  # unique to this server
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")[1:]}
    assert attributes["path"] == f"Path={BASE}"
    assert "httponly" in attributes and attributes["samesite"].lower() == "samesite=lax"
    assert attributes["max-age"] == "Max-Age=600"
    assert "secure" not in attributes  # plain http here
    assert value.strip('"').startswith("2|") and FLOW not in value  # signed (Tornado's v2 format)
    assert reply.headers["Referrer-Policy"] == "no-referrer" and reply.headers["Cache-Control"] == "no-store"

    # When: the same over https (behind a proxy)
    secure = await browser.http.get(
        f"{BASE}speckle-auth/login",
        params={"server": emulator.url, "flow": FLOW2, "_xsrf": browser.xsrf},
        headers={"X-Forwarded-Proto": "https"},
    )
    # Then
    assert "secure" in secure.headers["Set-Cookie"].lower()


async def test_a_forged_cookie_is_ignored(
    browser: Browser, other_browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    found = browser.flow_cookie()
    assert found is not None
    other_browser.http.cookies.set(found[0], FLOW, domain="127.0.0.1", path=BASE)  # the right id, unsigned
    # When
    page = await callback(other_browser, redirect)
    # Then
    assert page.status_code == 400 and "No login in progress" in page.text
    assert emulator.requests_seen("/auth/token") == 0


async def test_the_server_is_compared_after_normalisation_and_defaults(
    browser: Browser, emulator: Emulator
) -> None:
    verify = f"{emulator.url}/authn/verify/"
    host = emulator.url.removeprefix("http://")
    for given in (f"{emulator.url}/", host, emulator.url.upper().replace("HTTP://", "http://")):
        # When
        flow = f"flow-{hashlib.sha256(given.encode()).hexdigest()[:20]}"
        reply = await browser.get("speckle-auth/login", server=given, flow=flow)
        # Then
        assert reply.status_code == 302 and reply.headers["Location"].startswith(verify)
    # When: no server given
    reply = await browser.get("speckle-auth/login", flow=FLOW)
    # Then: the default one
    assert reply.status_code == 302 and reply.headers["Location"].startswith(verify)


UNKNOWN = "not set up to log in to that Speckle server"


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"server": "https://evil.example.org", "flow": FLOW}, UNKNOWN),
        ({"server": "http://127.0.0.1:1", "flow": FLOW}, UNKNOWN),
        ({"server": "javascript:alert(1)", "flow": FLOW}, UNKNOWN),
        ({"server": PAT_ONLY, "flow": FLOW}, "personal access token"),
        ({"flow": "short"}, "valid login id"),
        ({"flow": "a" * 20 + "<script>"}, "valid login id"),
        ({}, "valid login id"),
    ],
)
async def test_login_refuses_what_it_cannot_start_with_a_page_saying_why(
    browser: Browser, emulator: Emulator, params: dict[str, str], says: str
) -> None:
    # When
    reply = await browser.get("speckle-auth/login", **params)
    # Then
    assert reply.status_code == 400
    assert says in reply.text and "Log in with Speckle" in reply.text
    assert "Location" not in reply.headers and "Set-Cookie" not in reply.headers
    if params.get("flow") == FLOW:  # the page tells the waiting panel why, since its flow never started
        assert script_message(reply) == {"type": "speckle-auth", "flow": FLOW, "status": "failed"}
    else:  # nothing to tell, and nothing echoed
        assert "<script" not in reply.text


async def test_a_flow_id_starts_one_login_only(browser: Browser, emulator: Emulator) -> None:
    await start_login(browser, emulator)
    # When
    reply = await browser.get("speckle-auth/login", server=emulator.url, flow=FLOW)
    # Then
    assert reply.status_code == 409 and "already used" in reply.text


# --- failures at the callback -------------------------------------------------------------------------------


async def test_denied_on_speckle(browser: Browser, emulator: Emulator, callback_url: str) -> None:
    await start_login(browser, emulator)
    # When: the user clicks Deny
    page = await callback(browser, f"{callback_url}?denied=true")
    # Then
    assert page.status_code == 403 and "declined" in page.text and "Log in with Speckle" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW, "status": "denied"}
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "denied"
    assert emulator.requests_seen("/auth/token") == 0


async def test_a_callback_without_the_flow_cookie_exchanges_nothing(
    browser: Browser, other_browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    # When: the code arrives in a browser that did not start this login (login CSRF, another hub user)
    page = await callback(other_browser, redirect)
    # Then
    assert page.status_code == 400 and "No login in progress" in page.text
    assert script_message(page) is None
    assert emulator.requests_seen("/auth/token") == 0
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "pending"


async def test_an_expired_flow_exchanges_nothing(
    browser: Browser, emulator: Emulator, ext: SpeckleAuthApp
) -> None:
    now = [time.monotonic()]
    ext.logins.store.clock = lambda: now[0]
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    # When: the user comes back after more than 10 minutes
    now[0] += 601
    emulator.advance_clock(601)
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 410 and "expired" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW, "status": "expired"}
    assert emulator.requests_seen("/auth/token") == 0
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "expired"


async def test_a_replayed_callback_or_a_second_code_exchanges_nothing(
    browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    assert (await callback(browser, redirect)).status_code == 200
    # When: the same callback again (history, a reload), then another code Speckle issued for the challenge
    again = await callback(browser, redirect)
    second = await callback(browser, await consent(emulator, app_id, challenge))
    # Then
    for page in (again, second):
        assert page.status_code == 409 and "already completed" in page.text
    assert emulator.requests_seen("/auth/token") == 1
    claim = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
    assert claim.status_code == 200


async def test_a_challenge_mismatch_fails_with_a_page_saying_so(browser: Browser, emulator: Emulator) -> None:
    app_id, challenge = await start_login(browser, emulator)
    # When: Speckle issued the code for another challenge
    redirect = await consent(emulator, app_id, challenge[::-1])
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 400 and "challenge did not match" in page.text
    assert script_message(page) == {"type": "speckle-auth", "flow": FLOW, "status": "failed"}
    status = (await browser.get(f"speckle-auth/flows/{FLOW}")).json()
    assert status["status"] == "failed" and "challenge" in status["message"]
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 409


class TestMismatchedChallengeMethods:
    """The extension set to S256 against a server that compares challenges as plain text (a real Speckle)."""

    @pytest.fixture
    def extension_config(self, extension_config: dict[str, Any]) -> dict[str, Any]:
        return {**extension_config, "challenge_method": "S256"}

    async def test_the_login_fails_and_says_to_check_the_method(
        self, browser: Browser, emulator: Emulator
    ) -> None:
        page = await log_in_fully(browser, emulator)
        assert page.status_code == 400 and "challenge method" in page.text


@pytest.mark.parametrize("fault", ["drop", "error", "stopped"])
async def test_speckle_unreachable_or_failing_gives_a_502_page(
    browser: Browser, emulator: Emulator, fault: str
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    # When
    if fault == "stopped":
        emulator.stop()
    else:
        emulator.inject_fault("/auth/token", fault)
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 502 and "Log in with Speckle" in page.text
    assert ("Could not reach" in page.text) if fault != "error" else ("internal error" in page.text)
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "failed"


async def test_a_token_speckle_does_not_accept_never_reaches_the_panel(
    browser: Browser, emulator: Emulator
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    emulator.inject_fault("/graphql", "error")  # the who-am-I after the exchange
    # When
    page = await callback(browser, redirect)
    # Then
    assert page.status_code == 502
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 409


async def test_a_callback_without_code_or_denial_changes_nothing(
    browser: Browser, emulator: Emulator, callback_url: str
) -> None:
    await start_login(browser, emulator)
    # When
    page = await callback(browser, callback_url)
    # Then
    assert page.status_code == 400 and "without a sign-in code" in page.text
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "pending"


async def test_two_racing_callbacks_exchange_once(browser: Browser, emulator: Emulator) -> None:
    app_id, challenge = await start_login(browser, emulator)
    first = await consent(emulator, app_id, challenge)
    second = await consent(emulator, app_id, challenge)  # Speckle issues several codes for one challenge
    emulator.inject_fault("/auth/token", "slow", delay=0.3)  # the first exchange is still on its way
    # When
    pages = await asyncio.gather(callback(browser, first), callback(browser, second))
    # Then
    assert sorted(page.status_code for page in pages) == [200, 409]
    assert emulator.requests_seen("/auth/token") == 1


async def test_a_superseded_login_cannot_finish(browser: Browser, emulator: Emulator) -> None:
    await start_login(browser, emulator, FLOW)
    app_id, challenge = await start_login(browser, emulator, FLOW2)
    # When
    page = await callback(browser, await consent(emulator, app_id, challenge))
    # Then: the newer one finishes, the older reports superseded and hands nothing over
    assert page.status_code == 200
    older = await browser.get(f"speckle-auth/flows/{FLOW}")
    assert older.json()["status"] == "superseded" and "newer login" in older.json()["message"]
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 409


@pytest.mark.parametrize("referer", [None, "https://evil.example/page"], ids=["no-referer", "foreign-referer"])
async def test_another_site_cannot_start_a_login_in_this_browser(
    browser: Browser, emulator: Emulator, referer: str | None
) -> None:
    """Login CSRF / flow fixation: a link on another site opening `login` with the attacker's flow id."""
    await start_login(browser, emulator, FLOW)
    cookie = browser.flow_cookie()
    headers = {"Referer": referer} if referer else {}
    # When: no _xsrf, as a foreign page's link or redirect would send it
    reply = await browser.http.get(f"{BASE}speckle-auth/login", params={"server": emulator.url, "flow": FLOW2},
                                   headers=headers)
    # Then: refused, and the browser's own pending login is untouched
    assert reply.status_code == 403 and "Location" not in reply.headers
    assert browser.flow_cookie() == cookie
    assert (await browser.get(f"speckle-auth/flows/{FLOW}")).json()["status"] == "pending"
    assert (await browser.get(f"speckle-auth/flows/{FLOW2}")).status_code == 404


async def test_a_same_origin_referer_also_passes(browser: Browser, emulator: Emulator) -> None:
    reply = await browser.http.get(f"{BASE}speckle-auth/login", params={"server": emulator.url, "flow": FLOW},
                                   headers={"Referer": f"{browser.origin}{BASE}lab"})
    assert reply.status_code == 302


# --- the JSON routes ----------------------------------------------------------------------------------------


async def test_flow_routes_validate_ids_and_answer_404_for_unknown_ones(
    browser: Browser, emulator: Emulator
) -> None:
    for bad in ("short", "a" * 65, "a" * 20 + "%20x"):
        assert (await browser.get(f"speckle-auth/flows/{bad}")).json()["error"] == "bad_flow_id"
        reply = await browser.post(f"speckle-auth/flows/{bad}/claim")
        assert reply.status_code == 400 and reply.json()["error"] == "bad_flow_id"
    unknown = await browser.get(f"speckle-auth/flows/{FLOW}")
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_flow"
    assert (await browser.post(f"speckle-auth/flows/{FLOW}/claim")).status_code == 404
    # When: a pending flow is claimed
    await start_login(browser, emulator)
    reply = await browser.post(f"speckle-auth/flows/{FLOW}/claim")
    # Then
    assert reply.status_code == 409 and reply.json() == {
        "error": "not_done",
        "message": "This login has no token to hand over (it is pending).",
    }


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (None, 400, "bad_request"),
        ({"server_url": "x"}, 400, "bad_request"),
        ({"server_url": "https://evil.example.org", "refresh_token": "r" * 42}, 400, "unknown_server"),
        ({"server_url": PAT_ONLY, "refresh_token": "r" * 42}, 400, "no_app"),
        ({"server_url": "EMULATOR", "refresh_token": "0" * 42}, 400, "refresh_rejected"),
    ],
)
async def test_refresh_maps_its_errors(
    browser: Browser, emulator: Emulator, body: Any, status: int, error: str
) -> None:
    if body and body.get("server_url") == "EMULATOR":
        body = {**body, "server_url": emulator.url}
    # When
    reply = await browser.post("speckle-auth/refresh", body)
    # Then
    assert reply.status_code == status and reply.json()["error"] == error and reply.json()["message"]


async def test_refresh_with_speckle_down_is_a_502(browser: Browser, emulator: Emulator) -> None:
    emulator.inject_fault("/auth/token", "drop")
    body = {"server_url": emulator.url, "refresh_token": "0" * 42}
    reply = await browser.post("speckle-auth/refresh", body)
    assert reply.status_code == 502 and reply.json()["error"] == "unreachable"


async def test_refresh_refuses_a_body_that_is_not_json_without_logging_it(
    browser: Browser, server_log: Recorder
) -> None:
    TEST_CLIENT.set(True)
    reply = await browser.http.post(
        f"{BASE}speckle-auth/refresh",
        content=b"{not json " + b"f" * 42,
        headers={"X-XSRFToken": browser.xsrf},
    )
    assert reply.status_code == 400 and reply.json()["error"] == "bad_request"
    assert "f" * 42 not in server_log.text()
