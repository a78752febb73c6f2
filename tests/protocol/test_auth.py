"""The bearer + refresh flow, stepped through by hand (as httpx's own tests do) and under many threads."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from speckle_nb_auth._auth import SpeckleAuth
from speckle_nb_auth._errors import RefreshRejected
from speckle_nb_auth._protocol import TokenPair

INVALID = httpx.Response(403, content=json.dumps({"error": "Your token is not valid."}).encode())
OK = httpx.Response(200, json={"data": {}})
OLD, NEW = TokenPair("o" * 42, "p" * 42), TokenPair("n" * 42, "q" * 42)


def test_bearer_only_when_the_answer_is_fine() -> None:
    flow = SpeckleAuth(OLD).sync_auth_flow(httpx.Request("POST", "https://s/graphql"))
    request = next(flow)
    assert request.headers["Authorization"] == f"Bearer {OLD.token}"
    with pytest.raises(StopIteration):
        flow.send(OK)


def test_refresh_once_and_retry_on_invalid_token() -> None:
    seen: list[tuple[TokenPair, TokenPair]] = []
    auth = SpeckleAuth(OLD, refresher=lambda pair: NEW, on_refresh=lambda old, new: seen.append((old, new)))
    flow = auth.sync_auth_flow(httpx.Request("POST", "https://s/graphql"))
    next(flow)
    retried = flow.send(INVALID)
    assert retried.headers["Authorization"] == f"Bearer {NEW.token}"
    with pytest.raises(StopIteration):
        flow.send(INVALID)  # a second refusal is final: no loop
    assert auth.pair == NEW and seen == [(OLD, NEW)]


@pytest.mark.parametrize("answer", [httpx.Response(403, text="Forbidden"), httpx.Response(401, json={}), OK])
def test_other_answers_never_refresh(answer: httpx.Response) -> None:
    auth = SpeckleAuth(OLD, refresher=lambda pair: pytest.fail("refreshed"))
    flow = auth.sync_auth_flow(httpx.Request("GET", "https://s/graphql"))
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(answer)


def test_no_refresh_without_a_refresh_token_or_refresher() -> None:
    for auth in (SpeckleAuth(TokenPair("o" * 42), refresher=lambda p: NEW), SpeckleAuth(OLD)):
        flow = auth.sync_auth_flow(httpx.Request("GET", "https://s/graphql"))
        next(flow)
        with pytest.raises(StopIteration):
            flow.send(INVALID)


def test_a_failed_refresh_raises_its_own_clear_error() -> None:
    def refuse(pair: TokenPair) -> TokenPair:
        raise RefreshRejected("Speckle no longer accepts this sign-in's refresh token: log in again.")

    flow = SpeckleAuth(OLD, refresher=refuse).sync_auth_flow(httpx.Request("GET", "https://s/graphql"))
    next(flow)
    with pytest.raises(RefreshRejected, match="log in again"):
        flow.send(INVALID)


def test_many_threads_one_refresh() -> None:
    calls = []
    gate = threading.Event()

    def slow_refresh(pair: TokenPair) -> TokenPair:
        calls.append(pair)
        gate.wait(5)
        return NEW

    auth = SpeckleAuth(OLD, refresher=slow_refresh)
    results: list[str] = []

    def worker() -> None:
        flow = auth.sync_auth_flow(httpx.Request("GET", "https://s/graphql"))
        next(flow)
        results.append(flow.send(INVALID).headers["Authorization"])

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert len(calls) == 1
    assert results == [f"Bearer {NEW.token}"] * 20


def test_repr_shows_at_most_four_characters() -> None:
    assert OLD.token[:8] not in repr(SpeckleAuth(OLD))


def test_threads_waiting_on_a_failed_refresh_share_its_error() -> None:
    """Eight threads and a refresh that fails: one attempt, not eight in turn; a later call tries again."""
    calls = []
    gate = threading.Event()

    def failing(pair: TokenPair) -> TokenPair:
        calls.append(pair)
        gate.wait(5)
        raise RefreshRejected("Speckle no longer accepts this sign-in's refresh token: log in again.")

    auth = SpeckleAuth(OLD, refresher=failing)
    errors: list[BaseException] = []

    def worker() -> None:
        flow = auth.sync_auth_flow(httpx.Request("GET", "https://s/graphql"))
        next(flow)
        try:
            flow.send(INVALID)
        except RefreshRejected as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    started = threading.Event()
    for _ in range(500):  # poll, up to 5 s, for the first thread to be inside the refresher
        if calls:
            break
        started.wait(0.01)
    gate.set()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(errors) == 8
    worker()  # after the failure, a new call tries once more
    assert len(calls) == 2
