"""Speckle's desktop accounts (written by its desktop connectors), read only.

They live in `<data>/Speckle/Accounts.db` (SQLite, table `objects(hash, content)` of Account JSON) and
`<data>/Speckle/Accounts/*.json`, where `<data>` is `%APPDATA%` on Windows, `~/Library/Application Support` on
macOS and `$XDG_DATA_HOME` or `~/.config` on Linux; `SPECKLE_USERDATA_PATH` replaces `<data>`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import InvalidServerURL
from ._protocol import TokenPair, normalize_server_url

__all__ = ["DesktopAccount", "desktop_accounts", "speckle_data_dir"]


@dataclass(frozen=True)
class DesktopAccount:
    id: str
    server_url: str
    server_name: str
    user_id: str
    user_name: str
    user_email: str | None
    is_default: bool
    pair: TokenPair = field(repr=False)

    @property
    def label(self) -> str:
        who = f"{self.user_name} <{self.user_email}>" if self.user_email else self.user_name
        return f"{who} on {self.server_name}"


def speckle_data_dir() -> Path:
    override = os.environ.get("SPECKLE_USERDATA_PATH")
    if override:
        base = Path(override)
    elif sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".config")
    return base / "Speckle"


def _account(raw: Any) -> DesktopAccount | None:
    """An Account JSON document, or None when it is not one we can use."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict):
        return None
    server, user, token = raw.get("serverInfo"), raw.get("userInfo"), raw.get("token")
    if not (isinstance(server, dict) and isinstance(user, dict) and isinstance(token, str) and token):
        return None
    try:
        url = normalize_server_url(str(server.get("url") or ""))
    except InvalidServerURL:
        return None
    refresh = raw.get("refreshToken")
    email = user.get("email")
    return DesktopAccount(
        id=str(raw.get("id") or ""),
        server_url=url,
        server_name=str(server.get("name") or url),
        user_id=str(user.get("id") or ""),
        user_name=str(user.get("name") or "Unknown user"),
        user_email=str(email) if email else None,
        is_default=raw.get("isDefault") is True,
        pair=TokenPair(token, refresh if isinstance(refresh, str) and refresh else None),
    )


def _from_sqlite(path: Path) -> list[Any]:
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            return [row[0] for row in db.execute("SELECT content FROM objects")]
    except sqlite3.Error:
        return []


def _from_json_files(folder: Path) -> list[Any]:
    found = []
    for file in sorted(folder.glob("*.json")):
        try:
            found.append(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
    return found


def desktop_accounts(server: str | None = None, data_dir: Path | None = None) -> list[DesktopAccount]:
    """The desktop accounts found (optionally only those of `server`), the default first; unreadable or
    malformed entries are skipped."""
    folder = data_dir or speckle_data_dir()
    raw = []
    if (folder / "Accounts.db").is_file():
        raw += _from_sqlite(folder / "Accounts.db")
    if (folder / "Accounts").is_dir():
        raw += _from_json_files(folder / "Accounts")
    wanted = normalize_server_url(server) if server else None
    seen: set[tuple[str, str]] = set()
    accounts = []
    for entry in raw:
        account = _account(entry)
        if account is None or (wanted and account.server_url != wanted):
            continue
        key = (account.server_url, account.user_id or account.id)
        if key in seen:
            continue
        seen.add(key)
        accounts.append(account)
    return sorted(accounts, key=lambda a: not a.is_default)
