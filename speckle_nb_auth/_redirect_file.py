"""Open the sign-in address in the browser without putting it on a command line.

`webbrowser.open(url)` starts the browser with the address as an argument, and every user of the machine can
read a process's arguments (`/proc/<pid>/cmdline`, `ps`). The sign-in address holds the challenge, which under
Speckle's plain method is the verifier itself, and the connector app's secret is public: whoever reads it and
catches the code can exchange it. So the browser is given a file instead, readable by this user alone, that
sends it on to the address (Jupyter opens its own token the same way, `jpserver-*-open.html`).
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
import webbrowser
from pathlib import Path
from types import TracebackType

__all__ = ["RedirectFile"]


class RedirectFile:
    """A page in a folder of its own (0700; the page 0600) that sends the browser on to `url`. Use it as a
    context manager: the folder is removed when the sign-in ends, with the challenge it held."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._folder: Path | None = None

    @property
    def path(self) -> Path | None:
        return None if self._folder is None else self._folder / "sign-in.html"

    def open(self) -> bool:
        """Write the page and ask the browser to open it; False when no browser could be started."""
        folder = Path(tempfile.mkdtemp(prefix="speckle-sign-in-"))  # mkdtemp makes it 0700, owned by this user
        self._folder = folder
        page = folder / "sign-in.html"
        with page.open("x", encoding="utf-8") as handle:  # created in a folder nobody else may enter
            handle.write(_page(self._url))
        page.chmod(0o600)
        try:
            return webbrowser.open(page.as_uri())
        except webbrowser.Error:
            return False

    def remove(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def __enter__(self) -> RedirectFile:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"RedirectFile({self.path})"


def _page(url: str) -> str:
    attribute = html.escape(url, quote=True)
    literal = json.dumps(url).replace("<", "\\u003c")  # no "</script>" can end the script early
    # The refresh works without script; the script replaces the history entry so Back does not return here.
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"refresh\" content=\"0;url={attribute}\">"
        "<meta name=\"referrer\" content=\"no-referrer\"><title>Signing in to Speckle</title></head>\n"
        f"<body><p><a href=\"{attribute}\">Continue to Speckle's sign-in page</a></p>"
        f"<script>location.replace({literal});</script></body></html>\n"
    )
