"""Whether a verbose traceback shows a secret: each failure formatted with every frame's locals
(`traceback.TracebackException(capture_locals=True)`), as a debugger or a log with `exc_info` would show it, and
searched for every secret a scenario handled. A secret may show at most as its last four characters."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field

from speckle_nb_auth.emulator import Emulator

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Seen:
    """The secrets a scenario handled, besides those the emulator still knows (used codes are gone there)."""

    emulator: Emulator
    extra: list[str] = field(default_factory=list)

    def add(self, *values: str | None) -> None:
        self.extra.extend(v for v in values if v)

    def all(self) -> list[str]:
        creds = self.emulator.credentials
        users = [u[key] for u in creds["users"] for key in ("pat", "session_token")]
        return [*self.emulator.issued_secrets(), *users, creds["app_secret"], *self.extra]


def assert_no_secret(text: str, secrets: list[str]) -> None:
    plain = ANSI.sub("", text)
    for secret in set(secrets):
        pieces = {secret}
        if len(secret) >= 42:
            pieces |= {secret[10:], secret[:-4], secret[-8:]}  # the secret part, all but what a mask shows
        elif len(secret) >= 16:
            pieces |= {secret[:-4]}
        for piece in pieces:
            assert piece not in text and piece not in plain, f"a secret ({len(secret)} chars) was shown"


def verbose_text(err: BaseException) -> str:
    shown = traceback.TracebackException(type(err), err, err.__traceback__, capture_locals=True)
    return "".join(shown.format()) + repr(err) + str(err)
