"""The panel's synced state: what its browser half (`panel.js`) reads and shows, and what a saved notebook
keeps. Never a secret: tokens travel only in one-shot messages (`_messages`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

__all__ = ["PanelTraits"]

_HERE = Path(__file__).parent


class PanelTraits(anywidget.AnyWidget):
    _esm = _HERE / "panel.js"
    _css = _HERE / "panel.css"

    status = t.Unicode("signed_out", help="signed_out | signed_in").tag(sync=True)
    busy = t.Bool(False, help="the kernel is checking a credential").tag(sync=True)
    message = t.Unicode("", help="what happened, for people").tag(sync=True)
    error = t.Unicode("", help="what went wrong and what to do, for people").tag(sync=True)
    server_url = t.Unicode("", help="the signed-in server, or the one asked for").tag(sync=True)
    default_server = t.Unicode("", help="the kernel's default server (SPECKLE_SERVER or app.speckle.systems)").tag(
        sync=True
    )
    server_name = t.Unicode("").tag(sync=True)
    user_name = t.Unicode("").tag(sync=True)
    user_email = t.Unicode("").tag(sync=True)
    user_avatar = t.Unicode("").tag(sync=True)
    variable = t.Unicode("speckle", help="the notebook variable holding the Client").tag(sync=True)
    source = t.Unicode("", help="token | oauth | desktop | environment | hub | keyring | dotenv").tag(sync=True)
    remember = t.Bool(False, help="keep the sign-in in the OS keyring").tag(sync=True)
    desktop_accounts = t.List(t.Dict(), help="[{label, server_url}] of the desktop accounts").tag(sync=True)
    requested_scopes = t.List(t.Unicode()).tag(sync=True)
    scopes = t.List(t.Dict(), help="[{name, write, unrequested}] the token holds, where known").tag(sync=True)
    missing_scopes = t.List(t.Unicode()).tag(sync=True)
    kernel_refresh = t.Bool(False, help="the kernel can refresh by itself (app credentials in its env)").tag(
        sync=True
    )
    kept_token = t.Bool(False, help="Log out kept a token the person brought: offer to revoke it too").tag(
        sync=True
    )
    no_keyring = t.Bool(False, help="Remember me found no keyring: offer a .env file instead").tag(sync=True)
    panel_id = t.Unicode("", help="names this panel in mailbox messages").tag(sync=True)
    mailbox = t.Unicode("", help="the extension's mailbox the kernel reads while cells run; '' for none").tag(
        sync=True
    )
    waiting_until = t.Float(0.0, help="epoch seconds until which login() waits for a sign-in; 0: not waiting").tag(
        sync=True
    )
    # The address of the kernel's own sign-in while `login()` waits for it in its cell (no extension: the panel's
    # messages reach the kernel only after the cell, so the panel opens this address itself). It holds the
    # sign-in's challenge, worthless without the code that only this kernel's listener or prompt receives, and
    # is cleared when the wait ends, so a saved notebook keeps no live one.
    sign_in_url = t.Unicode("", help="the sign-in address login() waits on in its cell; '' for none").tag(sync=True)
    sign_in_paste = t.Bool(False, help="that sign-in's answer is pasted at login()'s prompt").tag(sync=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """What a frontend that renders no widgets shows: while `login()` waits in its cell, how to sign in."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None and self.sign_in_url:
            data, metadata = bundle
            bundle = {**data, "text/plain": waiting_text(self.sign_in_url, paste=self.sign_in_paste)}, metadata
        return bundle


def waiting_text(url: str, *, paste: bool) -> str:
    then = ("then paste the address the sign-in tab ended on at the prompt below" if paste
            else "the next cells run once you have")
    return (f"Sign in to Speckle: open {url} in your browser and sign in; {then}. "
            "To stop waiting, interrupt the kernel.")
