"""The JSON shapes that cross between the routes, the hub relay and the kernel (`core._wire`): each built and read
in one place, read without raising, with the tokens masked."""

from __future__ import annotations

import pytest

from speckle_nb_auth._protocol import TokenPair
from speckle_nb_auth._secret import Secret
from speckle_nb_auth.core._wire import (
    claim_reply,
    flow_failed,
    flow_status,
    message_of,
    read_body,
    read_claim,
    read_renewal,
    renewal_reply,
)

TOKEN, REFRESH = "t" * 42, "r" * 42


def test_a_claim_reply_reads_back_as_it_was_written() -> None:
    claimed = read_claim(claim_reply("https://speckle.example", TokenPair(TOKEN, REFRESH), "app"), "unused")
    assert claimed is not None and claimed.server_url == "https://speckle.example" and claimed.app_id == "app"
    assert claimed.pair == TokenPair(TOKEN, REFRESH) and isinstance(claimed.pair.token, Secret)
    assert TOKEN not in repr(claimed) and REFRESH not in repr(claimed)
    bare = read_claim({"token": TOKEN}, "https://fallback.example")
    assert bare is not None and bare.server_url == "https://fallback.example" and bare.app_id is None
    assert bare.pair.refresh_token is None


def test_a_renewal_reply_reads_back_as_it_was_written() -> None:
    assert read_renewal(renewal_reply(TokenPair(TOKEN, REFRESH))) == TokenPair(TOKEN, REFRESH)
    assert read_renewal(renewal_reply(TokenPair(TOKEN))) == TokenPair(TOKEN)


@pytest.mark.parametrize("answer", [None, [], "text", {}, {"token": 42}, {"error": "x", "message": "m"}])
def test_what_holds_no_token_reads_as_none(answer: object) -> None:
    assert read_claim(answer, "s") is None and read_renewal(answer) is None


def test_a_flow_is_told_as_the_panel_waits_on_it() -> None:
    assert flow_status("exchanging", "", app="a") == {"status": "pending", "message": "", "paste": False, "app": "a"}
    assert flow_failed("gone") == {"status": "failed", "message": "gone", "paste": False, "app": ""}
    assert message_of({"message": "why"}, "fallback") == "why"
    assert message_of({"message": ""}, "fallback") == message_of("junk", "fallback") == "fallback"


def test_a_request_body_holds_its_secrets_masked() -> None:
    body = read_body(f'{{"token": "{TOKEN}", "refresh_token": "{REFRESH}", "pasted": "{TOKEN}", "n": 1}}'.encode())
    assert isinstance(body, dict) and all(isinstance(body[k], Secret) for k in ("token", "refresh_token", "pasted"))
    assert TOKEN not in repr(body) and REFRESH not in repr(body) and body["n"] == 1
    assert read_body(b"not json") is None and read_body(b"[" * 100_000) is None and read_body(None) is None
