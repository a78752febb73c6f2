"""Least privilege that never passes on "unknown": a personal access token without `tokens:read` cannot list
its scopes, so each scope a notebook asks for is checked by a harmless question the emulator (as Speckle) answers
only under it. What no question can check is said, in the panel and in the sign-in's refusal."""

from __future__ import annotations

import pytest
from support.panel import deliver
from support.speckle import make_pat

from speckle_nb_auth import _sources as sources
from speckle_nb_auth._errors import NotSignedIn

pytestmark = pytest.mark.usefixtures("_fresh_registry")


def test_a_token_that_cannot_list_its_scopes_is_refused_for_a_scope_it_lacks(emulator, monkeypatch):
    """The attack on least privilege: login(scopes=["streams:read"]) took a profile:read-only token."""
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    monkeypatch.setenv("SPECKLE_TOKEN", make_pat(emulator, ["profile:read"]))
    with pytest.raises(NotSignedIn) as caught:
        sources.sign_in(emulator.url, scopes=["streams:read"])
    assert "lacks the scope this notebook asks for: streams:read" in caught.value.message
    assert "the server was asked under each" in caught.value.message
    for lacking in (["profile:email"], ["streams:read", "profile:read"]):
        with pytest.raises(NotSignedIn):
            sources.sign_in(emulator.url, scopes=lacking)


def test_probed_scopes_pass_and_a_scope_nothing_can_check_is_said(emulator, monkeypatch):
    monkeypatch.setenv("SPECKLE_SERVER", emulator.url)
    monkeypatch.setenv("SPECKLE_TOKEN", make_pat(emulator, ["profile:read", "profile:email", "streams:read"]))
    found = sources.sign_in(emulator.url, scopes=["streams:read", "profile:email", "server:stats"])
    check = found.scopes
    assert check.held is None and check.missing == ()
    assert check.probed == ("streams:read", "profile:email") and check.unchecked == ("server:stats",)
    said = check.describe()
    assert "it holds streams:read, profile:email" in said and "Not checked" in said and "server:stats" in said
    found.client.close()


def test_the_panel_shows_what_was_probed_and_what_was_not(emulator, panels, shell):
    narrow = make_pat(emulator, ["profile:read"])
    panel = panels(server=emulator.url, scopes=["streams:read", "streams:write"])
    deliver(panel, {"type": "pat", "server": emulator.url, "token": narrow})
    assert panel.status == "signed_out" and list(panel.missing_scopes) == ["streams:read"]
    assert "streams:read" in panel.error and "speckle" not in shell.user_ns

    deliver(panel, {"type": "pat", "server": emulator.url, "token": make_pat(emulator, ["profile:read",
                                                                                      "streams:read"])})
    assert panel.status == "signed_in", panel.error
    assert "it holds streams:read" in panel.message
    assert "Not checked" in panel.message and "streams:write" in panel.message  # said, never passed silently
