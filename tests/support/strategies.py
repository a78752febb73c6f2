"""What the property-based batteries against the running pieces share: Hypothesis' settings for them, and the
strategies both throw at them (server addresses as a message or a request names one, tokens, junk JSON). The
route half is tests/serverext/test_battery_routes.py, the panel half tests/kernel/test_battery_panel_messages.py.
A server address written "EMULATOR..." stands for the test's emulator: `resolve` makes it one."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck
from hypothesis import strategies as st

from support.routes import PAT_ONLY

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                              HealthCheck.data_too_large],
    "database": None,
}

HEX = "0123456789abcdef"
hex42 = st.text(alphabet=HEX, min_size=42, max_size=42)
huge = st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(1_000, 20_000))
# in a URL: long, but within what an HTTP server takes in a request line at all (Tornado: 64 KiB of headers)
long_in_url = st.builds(lambda ch, n: ch * n, st.characters(codec="utf-8"), st.integers(500, 2_000))
junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30) | hex42,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
hosts = st.one_of(
    st.text(max_size=40),
    # names and numbers a resolver may or may not take: empty and long labels, dotted numbers out of range
    st.lists(st.one_of(st.integers(0, 999).map(str), st.text(alphabet="ab-", max_size=3),
                       st.just("a" * 64)), min_size=1, max_size=5).map(".".join),
)
server_urls = st.one_of(
    st.sampled_from(["EMULATOR", "EMULATOR/", "EMULATOR_HOST", "EMULATOR_UPPER", PAT_ONLY, "https://evil.example.org",
                     "javascript:alert(1)", "http://127.0.0.1:1", "//evil.example.org", "", " ", "localhost"]),
    st.builds(lambda scheme, host, port: f"{scheme}{host}{port}",
              st.sampled_from(["", "http://", "https://", "ftp://", "HTTPS://", "//"]), hosts,
              st.sampled_from(["", ":1", ":443", ":99999", ":x"])),
    st.text(max_size=80),
)


def resolve(emu: Any, server: str) -> str:
    host = emu.url.removeprefix("http://")
    return {"EMULATOR": emu.url, "EMULATOR/": emu.url + "/", "EMULATOR_HOST": host,
            "EMULATOR_UPPER": emu.url.upper().replace("HTTP://", "http://")}.get(server, server)
