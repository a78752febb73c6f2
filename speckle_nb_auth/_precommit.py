"""speckle-token-guard: a pre-commit hook that refuses a commit holding a Speckle token.

A Speckle token is 42 lowercase hexadecimal characters (a 10-character id and a 32-character secret). The hook
looks for them in every staged text file it is given: code, `.env` files, and notebooks, whose cell sources,
outputs and saved widget state are all in the file. Notebooks and JSON files are also read as JSON, and their
strings scanned decoded, with terminal colour codes removed: in the file's text a token after `\n`, `\t` or
`\u001b[31m` follows a letter and would pass. It names each file and line (and, in a notebook, the cell), never
the token, and exits 1 when it found one.

A line that must hold such a string (a test vector, a hash that happens to look like one) is let through with
`speckle-token-guard: allow` on it.

    - repo: <this package's repository>
      rev: <a tag>
      hooks:
        - id: speckle-token-guard
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TOKEN", "Finding", "decoded_tokens", "main", "scan_file", "scan_text"]

# Not part of a longer run of letters or digits: a 64-character hash or a 40-character git id is no token.
TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{42}(?![0-9A-Za-z])")
ALLOW = "speckle-token-guard: allow"
_MAX_BYTES = 20 * 1024 * 1024  # larger files are data, not code or notebooks


class Finding:
    """Where a token is: file, line and, in a notebook, which cell. Holds no part of the token."""

    def __init__(self, path: str, line: int, where: str = "") -> None:
        self.path, self.line, self.where = path, line, where

    def __str__(self) -> str:
        where = f" ({self.where})" if self.where else ""
        return f"{self.path}:{self.line}{where}: a Speckle token (42 hexadecimal characters)"

    __repr__ = __str__


def scan_text(text: str) -> Iterator[tuple[int, str]]:
    """(line number, token) for each token-shaped string outside an allowed line; for this module's use."""
    for number, line in enumerate(text.splitlines(), 1):
        if ALLOW in line:
            continue
        for match in TOKEN.finditer(line):
            yield number, match.group(0)


# Terminal control sequences (colours in tracebacks): "\x1b[0;31m" ends in a letter that hides what follows.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def decoded_tokens(value: Any) -> list[str]:
    """The tokens in the strings of a parsed JSON value, as a person would read them (escapes decoded, colour
    codes removed), outside allowed lines; in order, once each."""
    found: dict[str, None] = {}
    for string in _strings(value):
        for line in _ANSI.sub("", string).splitlines():
            if ALLOW not in line:
                found.update(dict.fromkeys(TOKEN.findall(line)))
    return list(found)


def _notebook_places(notebook: Any) -> dict[str, str]:
    """Each token of a notebook -> the part holding it first ("cell 3 output", "metadata")."""
    places: dict[str, str] = {}

    def note(value: Any, place: str) -> None:
        for token in decoded_tokens(value):
            places.setdefault(token, place)

    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    for number, cell in enumerate(cells if isinstance(cells, list) else [], 1):
        if isinstance(cell, dict):
            note(cell.get("source", ""), f"cell {number} source")
            note(cell.get("outputs", []), f"cell {number} output")
            note(cell.get("metadata", {}), f"cell {number} metadata")
    if isinstance(notebook, dict):
        note(notebook.get("metadata", {}), "notebook metadata, e.g. saved widget state")
    return places


def _json(text: str, suffix: str) -> Any:
    if suffix not in (".ipynb", ".json") and not text.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def scan_file(path: str | Path) -> list[Finding]:
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_BYTES:
            return []
        raw = file.read_bytes()
    except OSError:
        return []
    if b"\0" in raw[:8192]:
        return []  # binary
    text = raw.decode("utf-8", "replace")
    found = list(scan_text(text))
    parsed = _json(text, file.suffix)
    if parsed is not None:
        lines = text.splitlines()
        seen = {token for _, token in found}
        for token in decoded_tokens(parsed):
            if token not in seen:  # its line in the file: where its characters are, escapes around them
                found.append((next((n for n, line in enumerate(lines, 1) if token in line), 1), token))
    places = _notebook_places(parsed) if file.suffix == ".ipynb" and parsed is not None else {}
    return [Finding(str(path), line, places.get(token, "")) for line, token in sorted(found)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="speckle-token-guard", description="Refuse files that hold a Speckle token (for pre-commit)."
    )
    parser.add_argument("files", nargs="*", help="the staged files (pre-commit passes them)")
    args = parser.parse_args(argv)
    findings = [finding for name in args.files for finding in scan_file(name)]
    if not findings:
        return 0
    for finding in findings:
        print(finding)
    print(
        "\nThe commit was refused: remove these tokens (read them from the environment or a keyring instead; "
        "in a notebook, clear the outputs that show one).\nIf a token was real, it may have been copied "
        "already: revoke it with `python -m speckle_nb_auth revoke` and make a new one. A line that must keep "
        f"such a string can say `{ALLOW}`."
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
