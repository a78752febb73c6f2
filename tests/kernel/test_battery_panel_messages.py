"""Bad input, property-based, against the login panel's kernel half with the emulator: whatever message arrives,
the panel never raises out of its handler, never shows a secret in any synced trait, its status is always a
known one, and its error is a clear message. `-s` shows the cases tried. The routes' half of this battery is
tests/serverext/test_battery_routes.py.
"""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support.panel import FakeShell, assert_consistent, deliver
from support.speckle import make_pat
from support.strategies import SETTINGS, hex42, huge, junk, resolve, server_urls

from speckle_nb_auth import Client
from speckle_nb_auth import _login as registry
from speckle_nb_auth._protocol import is_loopback_host
from speckle_nb_auth.emulator import Emulator
from speckle_nb_auth.panel._widget import GENERIC_ERROR

# the panel tests here start and end with an empty sign-in registry (support/fixtures_panel.py)
pytestmark = pytest.mark.usefixtures("_fresh_registry")

tried: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_cases() -> Iterator[None]:
    yield
    print("\npanel cases tried:", ", ".join(f"{k}: {v}" for k, v in tried.items()),
          f"(total {sum(tried.values())})")


def count(name: str) -> None:
    tried[name] = tried.get(name, 0) + 1


# --- the panel's kernel half --------------------------------------------------------------------------------

FRESH_PAT = "<a fresh personal access token>"
KNOWN_STATUSES = {"signed_out", "signed_in"}

tokens = st.one_of(st.just(FRESH_PAT), st.just("SEEDED_PAT"), hex42, st.text(max_size=60), huge, junk)
message_types = st.one_of(
    st.sampled_from(["pat", "oauth", "desktop", "logout", "cancel", "ready", "refreshed", "refresh_failed"]),
    st.text(max_size=12), junk,
)
messages = st.one_of(
    st.fixed_dictionaries(
        {"type": message_types},
        optional={"server": server_urls, "server_url": st.one_of(server_urls, junk), "token": tokens,
                  "refresh_token": tokens, "index": st.one_of(st.integers(-5, 20_000), junk),
                  "id": st.one_of(st.text(max_size=70), junk), "message": st.one_of(st.text(max_size=400), junk)},
    ),
    junk,
)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever address a message names, nothing leaves this machine: other names do not resolve (after the
    same IDNA encoding the real resolver applies first)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if isinstance(name, str) and not is_loopback_host(name):
            name.encode("idna")
            raise socket.gaierror(socket.EAI_NONAME, "only loopback addresses resolve in this test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr("speckle_nb_auth._session.Client", functools.partial(Client, timeout=2.0))


@settings(max_examples=120, **SETTINGS)
@given(sequence=st.lists(messages, min_size=1, max_size=4))
@example(sequence=[{"type": "pat", "server": "999.1.1.1", "token": "SEEDED_PAT"}])
@example(sequence=[{"type": "pat", "server": "a" * 64 + ".example.org", "token": "SEEDED_PAT"}])
@example(sequence=[{"type": "oauth", "server_url": "https://a..b", "token": "SEEDED_PAT"}])
def test_the_panel_takes_any_message_without_raising_or_leaking(
    emulator: Emulator, panels: Any, loopback_only: None, sequence: list[Any]
) -> None:
    registry._by_server.clear()  # each example is a fresh kernel: its own namespace, registry and panel
    registry._latest.clear()
    shell = FakeShell()
    panel = panels(server=emulator.url, shell=shell)
    seeded = emulator.credentials["pat"]
    secrets_ = {emulator.credentials["app_secret"], emulator.credentials["session_token"], seeded}
    for content in sequence:
        count("panel messages")
        if isinstance(content, dict):
            content = {key: resolve(emulator, value) if isinstance(value, str) else value
                       for key, value in content.items()}
            for key in ("token", "refresh_token"):
                if content.get(key) == FRESH_PAT:
                    content[key] = make_pat(emulator, ["profile:read", "profile:email", "streams:read"])
                elif content.get(key) == "SEEDED_PAT":
                    content[key] = seeded
                value = content.get(key)
                if isinstance(value, str) and len(value.strip()) >= 16 and len(set(value)) >= 6:
                    secrets_.add(value.strip())
        # When
        deliver(panel, content)  # raises nothing, or the test fails here
        # Then
        state = json.dumps(panel.get_state())
        for secret in secrets_:
            assert secret not in state and secret[-8:] not in state, "a secret in the panel's synced state"
        assert panel.status in KNOWN_STATUSES and not panel.busy
        assert_consistent(panel, shell)
        for text in (panel.error, panel.message):
            assert "Traceback" not in text and len(text) < 1000
        assert GENERIC_ERROR not in panel.error, f"no clear message for {content!r:.300}: {panel.error}"
        if panel.error:
            assert len(panel.error) >= 20
