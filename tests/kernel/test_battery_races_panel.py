"""Races in the panel's kernel half: a refresh storm from many threads through the panel's Client, and PAT
messages from many threads at once. The server extension's races (callbacks, a claim racing expiry) are
tests/serverext/test_battery_races_routes.py."""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.panel import (
    WHO,
    FakeBrowser,
    FakeShell,
    assert_consistent,
    assert_no_secret,
    deliver,
    hand_over,
    kill_token,
)
from support.speckle import oauth_pair

from speckle_nb_auth import Client, NotSignedIn, get_client
from speckle_nb_auth import _login as registry
from speckle_nb_auth.emulator import Emulator

# the panel tests here start and end with an empty sign-in registry (support/fixtures_panel.py)
pytestmark = pytest.mark.usefixtures("_fresh_registry")

THREADS = 16
figures: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    print("\nraces run:", ", ".join(f"{name}: {count}" for name, count in figures.items()))


def ran(name: str, count: int = 1) -> None:
    figures[name] = figures.get(name, 0) + count


def run_threads(target: Any, args: list[tuple[Any, ...]]) -> None:
    """Start every thread at once (a barrier), wait for all of them."""
    start = threading.Barrier(len(args))

    def go(*a: Any) -> None:
        start.wait(10)
        target(*a)

    threads = [threading.Thread(target=go, args=a) for a in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"


# --- a refresh storm through the panel's Client --------------------------------------------------------------


def test_a_refresh_storm_through_the_panel_sends_one_refresh(
    emulator: Emulator, panels: Any, shell: FakeShell
) -> None:
    pair = oauth_pair(emulator)
    panel = panels()
    fake_browser = FakeBrowser(panel, emulator)
    deliver(panel, {"type": "ready"})
    hand_over(panel, emulator.url, pair.token, pair.refresh_token)
    speckle = shell.user_ns["speckle"]
    kill_token(emulator, pair.token)
    before = emulator.requests_seen("/auth/token")
    names: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            names.append(speckle.graphql(WHO)["activeUser"]["name"])
        except BaseException as err:  # noqa: BLE001 - asserted below
            errors.append(err)

    # When
    run_threads(work, [()] * THREADS)
    ran("threads in a refresh storm (browser)", THREADS)
    # Then: every call worked, after exactly one refresh
    assert not errors and names == ["Ada Lovelace"] * THREADS
    assert len(fake_browser.requests) == 1
    assert emulator.requests_seen("/auth/token") == before + 1
    new = speckle.token_pair
    assert new.token != pair.token and panel.status == "signed_in" and not panel.error
    assert_no_secret(panel, pair.token, pair.refresh_token, new.token, new.refresh_token)


def test_a_refresh_storm_with_app_credentials_in_the_kernel_sends_one_refresh(
    emulator: Emulator, panels: Any, shell: FakeShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECKLE_APP_ID", emulator.credentials["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", emulator.credentials["app_secret"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)  # the app belongs to this server
    pair = oauth_pair(emulator)
    panel = panels()
    hand_over(panel, emulator.url, pair.token, pair.refresh_token)
    speckle = shell.user_ns["speckle"]
    kill_token(emulator, pair.token)
    before = emulator.requests_seen("/auth/token")
    names: list[str] = []
    run_threads(lambda: names.append(speckle.graphql(WHO)["activeUser"]["name"]), [()] * THREADS)
    ran("threads in a refresh storm (kernel)", THREADS)
    assert names == ["Ada Lovelace"] * THREADS
    assert emulator.requests_seen("/auth/token") == before + 1


# --- PAT messages from many threads --------------------------------------------------------------------------


@pytest.fixture
def made_clients(monkeypatch: pytest.MonkeyPatch) -> list[Client]:
    """Every Client the panel makes."""
    made: list[Client] = []
    lock = threading.Lock()

    def make(*args: Any, **kwargs: Any) -> Client:
        client = Client(*args, **kwargs)
        with lock:
            made.append(client)
        return client

    monkeypatch.setattr("speckle_nb_auth._session.Client", make)
    return made


@pytest.mark.parametrize("seed", [1, 2])
def test_pat_messages_from_many_threads_end_in_one_consistent_sign_in(
    emulator: Emulator, panels: Any, shell: FakeShell, made_clients: list[Client], seed: int
) -> None:
    users = emulator.credentials["users"]
    panel = panels()
    choices = random.Random(seed)
    messages = [
        {"type": "pat", "server": emulator.url, "token": users[choices.randrange(2)]["pat"]}
        for _ in range(THREADS)
    ] + [{"type": "pat", "server": emulator.url, "token": "f" * 42}, {"type": "cancel"}]
    choices.shuffle(messages)
    # When
    run_threads(lambda m: deliver(panel, m), [(m,) for m in messages])
    ran("concurrent PAT messages", len(messages))
    # Then: one client, in the namespace, in the registry, on the panel; every other one closed
    client = panel.client
    assert client is not None and panel.status == "signed_in" and not panel.busy
    assert [name for name, value in shell.user_ns.items() if isinstance(value, Client)] == ["speckle"]
    assert_consistent(panel, shell)
    assert (panel.user_name, panel.user_email) == (client.user.name, client.user.email)
    assert panel.user_name in {users[0]["name"], users[1]["name"]}
    assert registry._latest == [client] and get_client(emulator.url) is client
    assert client.graphql(WHO)["activeUser"]["name"] == panel.user_name
    still_open = [c for c in made_clients if not c.closed]
    assert still_open == [client]
    assert_no_secret(panel, users[0]["pat"], users[1]["pat"])


def test_a_call_in_flight_when_the_panel_signs_in_again_completes(
    emulator: Emulator, panels: Any, shell: FakeShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell's call is on its way when a message from the panel (another thread) replaces the sign-in: the
    call completes as it began; only calls made after the replacement are refused (NotSignedIn)."""
    monkeypatch.setattr("speckle_nb_auth._session.Client", functools.partial(Client, timeout=3.0))
    users = emulator.credentials["users"]
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": users[0]["pat"]})
    ada = shell.user_ns["speckle"]
    outcome: list[object] = []

    def cell() -> None:
        try:
            outcome.append(ada.graphql(WHO)["activeUser"]["name"])
        except Exception as err:  # noqa: BLE001 - asserted below
            outcome.append(err)

    seen = emulator.requests_seen("/graphql")
    emulator.inject_fault("/graphql", "slow", delay=0.5)  # the cell's call is the next one, and takes a while
    running = threading.Thread(target=cell)
    running.start()
    deadline = time.monotonic() + 5
    while emulator.requests_seen("/graphql") == seen and time.monotonic() < deadline:
        time.sleep(0.005)  # polled: the emulator offers no event for "a request arrived"
    # When: the panel signs in as someone else while the call is on its way
    deliver(panel, {"type": "pat", "server": emulator.url, "token": users[1]["pat"]})
    running.join(10)
    ran("calls in flight during a new sign-in")
    # Then
    assert panel.user_name == "Grace Hopper" and shell.user_ns["speckle"] is not ada
    assert_consistent(panel, shell)
    assert outcome == ["Ada Lovelace"], [f"{type(o).__name__}: {o}" for o in outcome]
    with pytest.raises(NotSignedIn):
        ada.graphql(WHO)
