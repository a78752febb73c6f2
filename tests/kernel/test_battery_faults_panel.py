"""Faults injected by the emulator (slow, 5xx, connection dropped) while the panel's kernel half works: the
validation of a PAT or an OAuth hand-over, and a refresh made by the injected Client directly with Speckle. Each
ends in a clear message, no half-signed-in state, an earlier good sign-in kept, and a retry that works. `-s`
shows the figure line.

The server extension's half of this battery (the callback, the refresh route, a refresh through the browser
half) is tests/serverext/test_battery_faults_routes.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from support.faults import EMULATOR_ROUTES, KINDS, SAYS, Figures, tokens
from support.panel import WHO, FakeShell, assert_no_secret, deliver, hand_over, kill_token

from speckle_nb_auth import Client
from speckle_nb_auth._errors import SpeckleServerError, SpeckleUnreachable
from speckle_nb_auth.emulator import Emulator

# the panel tests here start and end with an empty sign-in registry (support/fixtures_panel.py)
pytestmark = pytest.mark.usefixtures("_fresh_registry")

KERNEL_TIMEOUT = 1.0  # seconds: the kernel's Client's Speckle timeout in these tests

figures = Figures()
inject, kept = figures.inject, figures.kept


@pytest.fixture(scope="module", autouse=True)
def _print_figures() -> Iterator[None]:
    yield
    print(figures.line())


@pytest.fixture(autouse=True)
def _count_requests(emulator: Emulator) -> Iterator[None]:
    """Every request that reached Speckle."""
    yield
    figures["requests"] += sum(emulator.requests_seen(route) for route in EMULATOR_ROUTES)


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel makes its Clients with a short timeout, so a slow Speckle is a timeout within the test."""
    monkeypatch.setattr("speckle_nb_auth._session.Client", functools.partial(Client, timeout=KERNEL_TIMEOUT))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("via", ["pat", "oauth"])
def test_a_fault_while_validating_keeps_the_sign_in_and_the_same_message_works_after(
    emulator: Emulator, panels: Any, shell: FakeShell, short_timeouts: None, via: str, kind: str
) -> None:
    users = emulator.credentials["users"]
    panel = panels()
    deliver(panel, {"type": "pat", "server": emulator.url, "token": users[0]["pat"]})
    ada = shell.user_ns["speckle"]
    assert panel.user_name == "Ada Lovelace"
    if via == "pat":
        message = {"type": "pat", "server": emulator.url, "token": users[1]["pat"]}
        secrets_ = [users[1]["pat"]]
    else:
        token, refresh_token = tokens(emulator, user=1)
        message = {"type": "oauth", "server_url": emulator.url, "token": token, "refresh_token": refresh_token}
        secrets_ = [token, refresh_token]
    # When: Speckle fails the validation (activeUser, serverInfo)
    inject(emulator, "/graphql", kind)
    deliver(panel, message)
    # Then: the panel says what happened, and everything else is as it was
    assert SAYS[kind] in panel.error and "still signed in as Ada Lovelace" in panel.error
    assert panel.status == "signed_in" and panel.user_name == "Ada Lovelace" and not panel.busy
    assert list(shell.user_ns) == ["speckle"]
    kept(shell.user_ns["speckle"] is ada and ada.graphql(WHO)["activeUser"]["name"] == "Ada Lovelace")
    assert_no_secret(panel, *secrets_)
    # When: the same message again
    deliver(panel, message)
    # Then
    assert panel.error == "" and panel.status == "signed_in" and panel.user_name == "Grace Hopper"
    assert shell.user_ns["speckle"].user.name == "Grace Hopper" and panel.source == via.replace("pat", "token")
    assert_no_secret(panel, *secrets_)


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_while_signed_out_leaves_nothing_behind_and_the_same_message_works_after(
    emulator: Emulator, panels: Any, shell: FakeShell, short_timeouts: None, kind: str
) -> None:
    panel = panels()
    token, refresh_token = tokens(emulator)
    inject(emulator, "/graphql", kind)
    hand_over(panel, emulator.url, token, refresh_token)
    assert SAYS[kind] in panel.error and "still signed in" not in panel.error
    assert panel.status == "signed_out" and panel.client is None and shell.user_ns == {} and not panel.busy
    assert panel.user_name == "" and panel.source == ""
    hand_over(panel, emulator.url, token, refresh_token)
    assert panel.status == "signed_in" and shell.user_ns["speckle"].user.name == "Ada Lovelace"


@pytest.mark.parametrize("kind", KINDS)
def test_a_fault_during_the_clients_own_refresh_keeps_its_pair_and_the_next_call_refreshes(
    emulator: Emulator, panels: Any, shell: FakeShell, short_timeouts: None, monkeypatch: pytest.MonkeyPatch,
    kind: str
) -> None:
    """App credentials in the kernel's environment: the Client refreshes straight with Speckle."""
    monkeypatch.setenv("SPECKLE_APP_ID", emulator.credentials["app_id"])
    monkeypatch.setenv("SPECKLE_APP_SECRET", emulator.credentials["app_secret"])
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)  # the app belongs to this server
    panel = panels()
    token, refresh_token = tokens(emulator)
    hand_over(panel, emulator.url, token, refresh_token)
    speckle = shell.user_ns["speckle"]
    old = speckle.token_pair
    kill_token(emulator, token)
    refreshes = emulator.requests_seen("/auth/token")
    # When
    inject(emulator, "/auth/token", kind)
    expected = SpeckleServerError if kind == "error" else SpeckleUnreachable
    with pytest.raises(expected) as caught:
        speckle.graphql(WHO)
    # Then: a typed error that says what happened; the client keeps its pair, the panel its sign-in
    assert SAYS[kind] in caught.value.message and emulator.url in caught.value.message
    assert token not in caught.value.message and refresh_token not in caught.value.message
    assert speckle.token_pair == old and speckle.can_refresh
    kept(shell.user_ns["speckle"] is speckle and panel.status == "signed_in" and panel.client is speckle)
    # When: the next call
    assert speckle.graphql(WHO)["activeUser"]["name"] == "Ada Lovelace"
    # Then: it refreshed then, once
    assert emulator.requests_seen("/auth/token") == refreshes + 2
    assert speckle.token_pair.token != token and speckle.token_pair.refresh_token != refresh_token
    assert_no_secret(panel, token, refresh_token, speckle.token_pair.token, speckle.token_pair.refresh_token)
