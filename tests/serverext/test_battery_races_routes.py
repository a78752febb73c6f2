"""Races at the server extension: callbacks racing on one flow, and a claim racing the flow's expiry. The
kernel's races (a refresh storm through the panel's Client, PAT messages from many threads) are
tests/kernel/test_battery_races_panel.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from support.routes import FLOW, Browser, callback, consent, log_in_fully, start_login, whoami

from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.serverext import SpeckleAuthApp

figures: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    print("\nraces run:", ", ".join(f"{name}: {count}" for name, count in figures.items()))


def ran(name: str, count: int = 1) -> None:
    figures[name] = figures.get(name, 0) + count


# --- two callbacks for one flow -----------------------------------------------------------------------------


@pytest.mark.parametrize("same_code", [False, True], ids=["two-codes", "one-code-twice"])
async def test_racing_callbacks_for_one_flow_exchange_once(
    browser: Browser, emulator: Emulator, same_code: bool
) -> None:
    app_id, challenge = await start_login(browser, emulator)
    first = await consent(emulator, app_id, challenge)
    # Speckle issues several codes for one challenge; or the browser sends the same one twice
    others = [first if same_code else await consent(emulator, app_id, challenge) for _ in range(3)]
    emulator.inject_fault("/auth/token", "slow", delay=0.3)  # the first exchange is still on its way
    before = emulator.requests_seen("/auth/token")
    # When
    pages = await asyncio.gather(*(callback(browser, redirect) for redirect in [first, *others]))
    ran("racing callbacks", len(pages))
    # Then: one exchange, one success; the others say the login already went through
    assert emulator.requests_seen("/auth/token") == before + 1
    assert sorted(page.status_code for page in pages) == [200, 409, 409, 409]
    for page in pages:
        if page.status_code == 409:
            assert "Login already completed" in page.text and "once only" in page.text
        else:
            assert "Ada Lovelace" in page.text
    claims = await asyncio.gather(*(browser.post(f"speckle-auth/flows/{FLOW}/claim") for _ in range(4)))
    assert sorted(claim.status_code for claim in claims) == [200, 404, 404, 404]
    token = next(claim.json()["token"] for claim in claims if claim.status_code == 200)
    assert (await whoami(emulator, token))["name"] == "Ada Lovelace"


# --- a claim racing the flow's expiry ------------------------------------------------------------------------


class SteppingClock:
    """The extension's flow clock, moved on a little at every reading: the boundary is crossed mid-race."""

    def __init__(self, start: float, step: float) -> None:
        self.now, self.step, self.readings = start, step, 0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.readings += 1
            now, self.now = self.now, self.now + self.step
            return now


@pytest.mark.parametrize("readings_before_boundary", [0, 1, 2, 3, 5, 8, 13])
async def test_a_claim_racing_expiry_succeeds_once_or_finds_the_flow_expired_never_both(
    browser: Browser, emulator: Emulator, ext: SpeckleAuthApp, readings_before_boundary: int
) -> None:
    store = ext.logins.store
    clock = SteppingClock(0.0, 0.0)
    store.clock = clock
    assert (await log_in_fully(browser, emulator)).status_code == 200
    flow = store.get(FLOW)
    assert flow is not None and flow.status == "done"
    # When: the clock reaches exactly the flow's lifetime after `readings_before_boundary` more readings,
    # while claims and status reads race
    step = 1e-3
    clock.now, clock.step = flow.created + store.lifetime - readings_before_boundary * step, step
    requests = []
    for _ in range(6):
        requests += [browser.post(f"speckle-auth/flows/{FLOW}/claim"), browser.get(f"speckle-auth/flows/{FLOW}")]
    replies = await asyncio.gather(*requests)
    ran("claims racing expiry", len(replies) // 2)
    # Then: no 5xx, and either one claim won or the flow expired, never both
    assert all(reply.status_code in (200, 404, 409) for reply in replies), [r.status_code for r in replies]
    claims, reads = replies[0::2], replies[1::2]
    won = [claim for claim in claims if claim.status_code == 200]
    expired_seen = [r for r in reads if r.status_code == 200 and r.json()["status"] == "expired"] + [
        c for c in claims if c.status_code == 409 and "expired" in c.json()["message"]
    ]
    assert len(won) <= 1
    assert bool(won) != bool(expired_seen), (len(won), len(expired_seen))
    for reply in replies:
        assert set(reply.json()) <= {"status", "message", "error", "server_url", "token", "refresh_token", "app_id",
                                   "paste", "app"}
        assert reply.json().get("message") is not None or reply.status_code == 200
    if won:
        token = won[0].json()["token"]
        assert (await whoami(emulator, token))["name"] == "Ada Lovelace"
        for reply in replies:
            if reply is not won[0]:
                assert token not in reply.text
    else:
        assert store.get(FLOW) is not None and store.get(FLOW).tokens is None  # type: ignore[union-attr]
    # exactly at the boundary, the flow is expired: a claim made then finds it so
    if readings_before_boundary == 0:
        assert not won


async def test_a_callback_at_the_expiry_boundary_exchanges_nothing(
    browser: Browser, emulator: Emulator, ext: SpeckleAuthApp
) -> None:
    store = ext.logins.store
    clock = SteppingClock(1000.0, 0.0)
    store.clock = clock
    app_id, challenge = await start_login(browser, emulator)
    redirect = await consent(emulator, app_id, challenge)
    clock.now = 1000.0 + store.lifetime  # exactly
    page = await callback(browser, redirect)
    ran("callbacks at the expiry boundary")
    assert page.status_code == 410 and "expired" in page.text
    assert emulator.requests_seen("/auth/token") == 0
