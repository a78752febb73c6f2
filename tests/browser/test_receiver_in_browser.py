"""The loopback receiver against a hostile page in headless Chromium, as the outside security review attacked it:
a page of another loopback origin fires the sign-in answer at the receiver as an image, a `fetch(no-cors)` and
a frame. None of them may end the pending login; the tab's own navigation, as Speckle's redirect is, does."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from speckle_nb_auth._receiver import LoopbackReceiver, Received

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><title>waiting</title>
<script>
let left = 3;
const done = () => {{ if (--left === 0) document.title = "done"; }};
</script>
<img src="{base}/?denied=true" onload="done()" onerror="done()">
<iframe src="{base}/?access_code={code}" onload="done()"></iframe>
<script>fetch("{base}/?access_code={code}", {{ mode: "no-cors" }}).then(done, done);</script>
"""


@contextmanager
def hostile_page(html: str) -> Iterator[str]:
    """A page on another loopback origin (another port), as any local program or site could serve."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_only_the_tabs_own_navigation_ends_a_pending_login(browser: Any) -> None:
    code = secrets.token_hex(21)
    with LoopbackReceiver("http://localhost:0") as receiver:
        with hostile_page(ATTACK.format(base=receiver.url, code=code)) as attack:
            context = browser.new_context()
            page = context.new_page()
            page.goto(attack)
            page.wait_for_function("document.title === 'done'", timeout=15_000)
            assert receiver.wait(0.5) is None  # neither denied nor signed in by the page's requests
            answer = page.goto(f"{receiver.url}/?access_code={code}")  # the tab itself is sent there
            assert answer is not None and answer.status == 200
            assert receiver.wait(5) == Received("code", code)
            context.close()
