"""What the two halves of the fault battery share (tests/serverext/test_battery_faults_routes.py, the server
extension's; tests/kernel/test_battery_faults_panel.py, the panel's kernel half): the faults the emulator
injects, what each says, and the figures each half prints at its end (`-s` shows them)."""

from __future__ import annotations

from typing import Any

from support.speckle import oauth_pair

SLOW = 2.0  # how long a "slow" Speckle takes to answer: beyond the extension's and the kernel's timeouts

# What each fault says, in the page, the flow's JSON, the panel's error and the typed error.
SAYS = {
    "slow": "did not answer in time",
    "error": "internal error (HTTP 502)",
    "drop": "the connection was dropped",
}
KINDS = list(SAYS)
EMULATOR_ROUTES = ("/graphql", "/auth/token", "/auth/logout", "/auth/accesscode")


class Figures(dict[str, int]):
    """A battery's counts: faults injected, requests seen, earlier good sign-ins checked after a fault."""

    def __init__(self) -> None:
        super().__init__(faults=0, requests=0, kept=0, lost=0)

    def inject(self, emu: Any, route: str, kind: str) -> None:
        self["faults"] += 1
        emu.inject_fault(route, kind, delay=SLOW)

    def kept(self, ok: bool) -> None:
        """An earlier good sign-in was checked after a fault: counted, then asserted."""
        self["kept" if ok else "lost"] += 1
        assert ok, "a fault lost an earlier good sign-in"

    def line(self) -> str:
        return (f"\nfaults injected: {self['faults']}, requests: {self['requests']}, "
                f"good sign-ins checked: {self['kept'] + self['lost']}, good sign-ins lost: {self['lost']}")


def tokens(emu: Any, user: int = 0) -> tuple[str, str]:
    pair = oauth_pair(emu, user=user)
    assert pair.refresh_token is not None
    return pair.token, pair.refresh_token
