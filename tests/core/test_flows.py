"""The flow store (`core._flows`), stepped through by hand with an injected clock: no server."""

from __future__ import annotations

import pytest

from speckle_nb_auth._protocol import TokenPair
from speckle_nb_auth.core._flows import FlowIdInUse, FlowStore, is_flow_id

SERVER = "http://127.0.0.1:3000"
PAIR = TokenPair("t" * 42, "r" * 42)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> FlowStore:
    return FlowStore(lifetime=600, max_flows=5, clock=clock)


def fid(n: int) -> str:
    return f"flow-{n:012d}"


def start(store: FlowStore, n: int, replaces: str | None = None) -> None:
    store.start(fid(n), SERVER, f"verifier-{n}", f"challenge-{n}", replaces=replaces)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("a" * 16, True),
        ("A-z_09" * 10 + "abcd", True),
        ("a" * 15, False),
        ("a" * 65, False),
        ("a" * 20 + "/", False),
        ("a" * 20 + "%2F", False),
        ("a" * 20 + "\n", False),
        ("", False),
        (None, False),
    ],
)
def test_flow_ids_have_a_strict_format(value: str | None, valid: bool) -> None:
    assert is_flow_id(value) is valid


def test_a_new_flow_is_pending_and_keeps_its_server_and_verifier(store: FlowStore) -> None:
    # When
    start(store, 1)
    # Then
    flow = store.get(fid(1))
    assert flow is not None
    assert (flow.status, flow.server_url, flow.verifier, flow.challenge) == (
        "pending",
        SERVER,
        "verifier-1",
        "challenge-1",
    )
    assert "verifier-1" not in repr(flow) and "challenge-1" not in repr(flow)


def test_a_malformed_or_reused_id_starts_nothing(store: FlowStore) -> None:
    with pytest.raises(ValueError):
        store.start("short", SERVER, "v", "c")
    start(store, 1)
    with pytest.raises(FlowIdInUse):
        start(store, 1)
    assert len(store) == 1


def test_a_flow_exchanges_once_then_hands_its_tokens_over_once(store: FlowStore) -> None:
    start(store, 1)
    # When
    flow = store.begin_exchange(fid(1))
    # Then: marked before any await, so a racing second callback finds nothing to exchange
    assert flow is not None and flow.status == "exchanging"
    assert store.begin_exchange(fid(1)) is None
    # When
    store.succeed(flow, PAIR, "Ada")
    # Then
    assert (flow.status, flow.user_name) == ("done", "Ada")
    assert store.begin_exchange(fid(1)) is None
    assert store.claim(fid(1)) == (SERVER, PAIR)
    assert store.claim(fid(1)) is None
    after = store.get(fid(1))
    assert after is not None and after.claimed and after.tokens is None and after.status == "done"


def test_a_failed_exchange_keeps_the_error_and_hands_nothing_over(store: FlowStore) -> None:
    start(store, 1)
    flow = store.begin_exchange(fid(1))
    assert flow is not None
    # When
    store.fail(flow, "challenge_mismatch", "Speckle refused the sign-in.")
    # Then
    assert (flow.status, flow.error_code, flow.message) == (
        "failed",
        "challenge_mismatch",
        "Speckle refused the sign-in.",
    )
    assert store.claim(fid(1)) is None
    assert store.begin_exchange(fid(1)) is None


def test_a_denied_flow_ends_and_exchanges_nothing(store: FlowStore) -> None:
    start(store, 1)
    # When
    assert store.deny(fid(1)) is not None
    # Then
    flow = store.get(fid(1))
    assert flow is not None and flow.status == "denied" and "declined" in flow.message
    assert store.begin_exchange(fid(1)) is None
    assert store.deny(fid(1)) is None


def test_a_flow_expires_after_its_lifetime_and_is_dropped_later(store: FlowStore, clock: Clock) -> None:
    start(store, 1)
    # When
    clock.now += 600
    # Then
    flow = store.get(fid(1))
    assert flow is not None and flow.status == "expired" and "10 minutes" in flow.message
    assert store.begin_exchange(fid(1)) is None
    # When: another lifetime later, the id is forgotten
    clock.now += 600
    # Then
    assert store.get(fid(1)) is None


def test_an_unclaimed_token_expires_with_its_flow(store: FlowStore, clock: Clock) -> None:
    start(store, 1)
    flow = store.begin_exchange(fid(1))
    assert flow is not None
    store.succeed(flow, PAIR, "Ada")
    # When
    clock.now += 601
    # Then
    assert store.claim(fid(1)) is None
    assert flow.tokens is None and flow.status == "expired"


def test_expired_flows_are_pruned_when_a_flow_starts(store: FlowStore, clock: Clock) -> None:
    start(store, 1)
    start(store, 2)
    clock.now += 1200
    # When
    start(store, 3)
    # Then
    assert len(store) == 1 and store.get(fid(3)) is not None


def test_the_oldest_flow_makes_room_when_the_store_is_full(store: FlowStore) -> None:
    for n in range(1, 6):
        start(store, n)
    # When
    start(store, 6)
    # Then
    assert len(store) == 5
    assert store.get(fid(1)) is None
    assert store.get(fid(6)) is not None


def test_a_new_login_from_the_same_browser_supersedes_its_pending_one(store: FlowStore) -> None:
    start(store, 1)
    # When
    start(store, 2, replaces=fid(1))
    # Then
    old = store.get(fid(1))
    assert old is not None and old.status == "superseded" and "newer login" in old.message
    assert store.begin_exchange(fid(1)) is None
    assert store.begin_exchange(fid(2)) is not None


def test_supersede_leaves_a_finished_flow_alone(store: FlowStore) -> None:
    start(store, 1)
    flow = store.begin_exchange(fid(1))
    assert flow is not None
    store.succeed(flow, PAIR, "Ada")
    # When
    start(store, 2, replaces=fid(1))
    # Then: its token can still be collected
    assert store.claim(fid(1)) == (SERVER, PAIR)


def test_an_outcome_arriving_for_a_flow_no_longer_exchanging_changes_nothing(store: FlowStore) -> None:
    start(store, 1)
    flow = store.get(fid(1))
    assert flow is not None
    # When: nobody called begin_exchange
    store.succeed(flow, PAIR, "Ada")
    store.fail(flow, "x", "y")
    # Then
    assert flow.status == "pending" and flow.tokens is None


def test_a_store_needs_room_and_time() -> None:
    with pytest.raises(ValueError):
        FlowStore(lifetime=0)
    with pytest.raises(ValueError):
        FlowStore(max_flows=0)
