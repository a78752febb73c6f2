"""The result pages (`core._pages`): escaping, the one nonce'd script, the status for every outcome."""

from __future__ import annotations

import json
import re

import pytest

from speckle_nb_auth.core._flows import Flow
from speckle_nb_auth.core._pages import (
    RETRY,
    Page,
    error_status,
    flow_page,
    page_headers,
    problem_page,
    render,
    success,
)

NONCE = "n0nce-n0nce-n0nce"
FLOW_ID = "flow-aaaaaaaaaaaaaaaa"


def flow(status: str, **fields: object) -> Flow:
    made = Flow(FLOW_ID, "http://127.0.0.1:3000", "v", "c", created=0.0)
    made.status = status  # type: ignore[assignment]
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def posted(html: str) -> dict[str, object] | None:
    match = re.search(r"channel\.postMessage\((\{.*?\})\);", html)
    return json.loads(match.group(1)) if match else None


def test_everything_shown_is_escaped() -> None:
    evil = '<img src=x onerror="alert(1)"></script><script>alert(2)</script>'
    # When
    html = render(success(FLOW_ID, evil, "http://127.0.0.1:3000"), NONCE)
    # Then
    assert "<img" not in html and "alert(2)</script>" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert re.findall(r"<script[^>]*>", html) == [f'<script nonce="{NONCE}">']
    assert re.findall(r"<style[^>]*>", html) == [f'<style nonce="{NONCE}">']


def test_the_script_data_cannot_end_the_script_early() -> None:
    page = Page(400, "t", "m", "</script><b>", "failed")
    html = render(page, NONCE)
    assert html.count("</script>") == 1
    assert posted(html) == {"type": "speckle-auth", "flow": "</script><b>", "status": "failed", "message": "m"}


def test_success_tells_the_panel_and_closes_the_tab() -> None:
    html = render(success(FLOW_ID, "Ada Lovelace", "http://127.0.0.1:3000"), NONCE)
    assert "Ada Lovelace" in html and "close this tab" in html and RETRY not in html.replace("&#x27;", "'")
    assert posted(html) == {"type": "speckle-auth", "flow": FLOW_ID, "status": "done"}
    assert 'new BroadcastChannel("speckle-nb-auth")' in html
    assert "if (true)" in html and "window.close()" in html


@pytest.mark.parametrize(
    ("name", "email", "shown"),
    [("Ada Lovelace", "ada@example.org", "as Ada Lovelace (ada@example.org)."),
     ("Ada Lovelace", "", "as Ada Lovelace."), ("", "ada@example.org", "as ada@example.org.")],
)
def test_a_done_login_names_the_account_it_signed_in(name: str, email: str, shown: str) -> None:
    """Speckle sends no `state`: a login someone else completed with their own code shows as their account."""
    html = render(flow_page(flow("done", user_name=name, user_email=email)), NONCE)
    assert f"signed in to http://127.0.0.1:3000 {shown}" in html and "Not your account?" in html


def test_a_failure_says_how_to_retry_and_stays_open() -> None:
    html = render(flow_page(flow("denied", message="Declined.")), NONCE)
    assert "Log in with Speckle" in html and "Declined." in html
    assert posted(html) == {"type": "speckle-auth", "flow": FLOW_ID, "status": "denied", "message": "Declined."}
    assert "if (false)" in html


def test_a_page_without_a_flow_has_no_script() -> None:
    html = render(Page(400, "Unknown server", "No."), NONCE)
    assert "<script" not in html


def test_headers_forbid_everything_but_the_nonced_script_and_style() -> None:
    headers = page_headers(NONCE)
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'; ")
    assert f"script-src 'nonce-{NONCE}'" in csp and f"style-src 'nonce-{NONCE}'" in csp
    for directive in ("frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"):
        assert directive in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("made", "status", "told"),
    [
        (flow("done", user_name="Ada"), 200, "done"),
        (flow("denied"), 403, "denied"),
        (flow("expired"), 410, "expired"),
        (flow("superseded"), 409, "superseded"),
        (flow("failed", error_code="challenge_mismatch"), 400, "failed"),
        (flow("failed", error_code="unreachable"), 502, "failed"),
        (flow("failed", error_code="server_error"), 502, "failed"),
        (flow("pending"), 409, None),
        (flow("exchanging"), 409, None),
        (None, 400, None),
    ],
)
def test_each_outcome_has_its_status(made: Flow | None, status: int, told: str | None) -> None:
    page = flow_page(made)
    assert page.status == status and page.flow_status == told


def test_error_codes_map_to_statuses() -> None:
    assert [error_status(c) for c in ("unreachable", "server_error", "graphql")] == [502, 502, 502]
    assert [error_status(c) for c in ("configuration", "invalid_server_url")] == [500, 500]
    refused = ("refresh_rejected", "access_code_used", "invalid_token")
    assert [error_status(c) for c in refused] == [400, 400, 400]


def test_only_known_callback_problems_have_pages() -> None:
    used, no_code = problem_page("used"), problem_page("no_code")
    assert used is not None and used.status == 409 and used.flow_status is None
    assert no_code is not None and no_code.status == 400
    assert problem_page("<script>") is None and problem_page("") is None
