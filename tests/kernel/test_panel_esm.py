"""The panel's ES module in headless Chromium, against a fake model and a fake `speckle-auth` API: what it
sends to the kernel, what it asks the extension, and what it shows. The end-to-end browser tests (real Jupyter,
real extension) live elsewhere; these only need a Chromium binary and fail without one."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from support import REPO

ESM = REPO / "speckle_nb_auth" / "panel" / "panel.js"
XSRF = "2|ab12|cd34|1700000000"
TOKEN, REFRESH = "a1" * 21, "b2" * 21

PAGE = """<!doctype html><html><head>
<script id="jupyter-config-data" type="application/json">{"baseUrl": "/"}</script></head>
<body><div id="root"></div><script type="module">
import widget from "/panel.js";
class Model {
  constructor(state) { this.state = state; this.handlers = {}; this.sent = []; }
  get(key) { return this.state[key]; }
  set(key, value) { this.state[key] = value; }
  save_changes() { this.saved = (this.saved || 0) + 1; }
  on(event, f) { (this.handlers[event] ??= []).push(f); }
  off(event, f) { this.handlers[event] = (this.handlers[event] || []).filter((g) => g !== f); }
  emit(event, ...args) { for (const f of this.handlers[event] || []) f(...args); }
  send(message) { this.sent.push(message); }
  update(values) { Object.assign(this.state, values); for (const k in values) this.emit("change:" + k); }
}
window.model = new Model(__STATE__);
widget.initialize({ model: window.model });
widget.render({ model: window.model, el: document.getElementById("root") });
window.rendered = true;
</script></body></html>"""

STATE = {
    "status": "signed_out", "busy": False, "message": "", "error": "", "server_url": "", "server_name": "",
    "user_name": "", "user_email": "", "user_avatar": "", "variable": "speckle", "source": "",
    "remember": False, "desktop_accounts": [], "requested_scopes": [], "scopes": [], "missing_scopes": [],
    "kernel_refresh": False,
}
SERVERS = [
    {"url": "https://emu.example", "name": "Emu", "oauth": True},
    {"url": "https://pat-only.example", "name": "P", "oauth": False},
]


class FakeJupyter:
    """The page, the module and the extension's routes, recording what the browser asked."""

    def __init__(self) -> None:
        self.extension = True
        self.flows: dict[str, str] = {}
        self.claims: list[dict] = []
        self.refreshes: list[dict] = []
        self.logins: list[dict] = []
        self.state = dict(STATE)
        self.servers = list(SERVERS)
        self.any_server = False
        self.nbclassic = False  # serve the page as nbclassic does: the base URL on <body>, no config script
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body, kind="application/json", cookie=None):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if cookie:
                    self.send_header("Set-Cookie", cookie)
                self.end_headers()
                self.wfile.write(data)

            def xsrf_ok(self):
                cookie = self.headers.get("Cookie", "")
                return self.headers.get("X-XSRFToken") == XSRF and f"_xsrf={XSRF}" in cookie

            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/":
                    page = PAGE.replace("__STATE__", json.dumps(fake.state))
                    if fake.nbclassic:
                        page = re.sub(r'<script id="jupyter-config-data".*?</script>', "", page, flags=re.S)
                        page = page.replace("<body>", '<body data-base-url="/">')
                    return self.reply(200, page, "text/html", cookie=f"_xsrf={XSRF}; Path=/")
                if url.path == "/panel.js":
                    return self.reply(200, ESM.read_text(), "text/javascript")
                if url.path == "/speckle-auth/status":
                    if fake.extension is not True:  # False: not there; a number: there, refusing with it
                        code = 404 if fake.extension is False else fake.extension
                        return self.reply(code, {"message": "Not found" if code == 404 else "Forbidden"})
                    status = {"version": "1", "default_server": "https://emu.example", "servers": fake.servers,
                              "any_server": fake.any_server}
                    return self.reply(200, status)
                if url.path == "/speckle-auth/login":
                    fake.logins.append(query)
                    fake.flows[query["flow"]] = fake.flows.get(query["flow"], "pending")
                    return self.reply(200, "<p>signing in</p>", "text/html")
                if url.path.startswith("/speckle-auth/flows/"):
                    state = fake.flows.get(url.path.rsplit("/", 1)[1])
                    if state is None:
                        return self.reply(404, {"message": "unknown"})
                    message = "Denied by you." if state == "denied" else ""
                    return self.reply(200, {"status": state, "message": message})
                self.reply(404, {})

            def do_POST(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if not self.xsrf_ok():
                    return self.reply(403, {"message": "XSRF"})
                if url.path.endswith("/claim"):
                    flow = url.path.split("/")[-2]
                    fake.claims.append({"flow": flow})
                    if fake.flows.get(flow) != "done":
                        return self.reply(409, {"error": "not_done", "message": "Not finished."})
                    fake.flows[flow] = "claimed"
                    pair = {"server_url": "https://emu.example", "token": TOKEN, "refresh_token": REFRESH,
                            "app_id": "emuapp0001"}
                    return self.reply(200, pair)
                if url.path == "/speckle-auth/refresh":
                    fake.refreshes.append(body)
                    if body.get("refresh_token") != REFRESH:
                        return self.reply(401, {"error": "refresh_rejected", "message": "Log in again."})
                    return self.reply(200, {"token": "c3" * 21, "refresh_token": "d4" * 21})
                self.reply(404, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def jp_asyncio_loop():
    """No Jupyter server runs in this module, and Playwright's sync API owns the thread's event loop: replace
    pytest-jupyter's autouse loop fixtures, which would try to close that running loop."""
    yield None


@pytest.fixture
def jp_server_cleanup():
    yield


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api

    if CHROMIUM is None:
        pytest.fail("Chromium is missing: run scripts/bootstrap.sh as root, or 'apt-get install -y chromium'")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def jupyter():
    fake = FakeJupyter()
    yield fake
    fake.close()


@pytest.fixture
def open_panel(browser, jupyter):
    contexts = []

    def open_(**state):
        jupyter.state.update(state)
        contexts.append(browser.new_context())
        page = contexts[-1].new_page()
        page.goto(jupyter.url)
        page.wait_for_function("window.rendered === true")
        return page

    yield open_
    for context in contexts:
        context.close()


def sent(page) -> list[dict]:
    """What the module sent the kernel; a "ready" carries its page's id, which varies."""
    messages = page.evaluate("window.model.sent")
    for message in messages:
        if message.get("type") == "ready":
            assert isinstance(message.pop("view"), str)
    return messages


def test_pat_is_sent_once_and_cleared(open_panel, jupyter):
    page = open_panel()
    assert sent(page) == [{"type": "ready"}]
    page.click(".snb-pat-box summary")
    page.fill(".snb-pat-input", TOKEN)
    page.click(".snb-pat-submit")
    assert page.input_value(".snb-pat-input") == ""
    assert sent(page)[-1] == {"type": "pat", "server": "https://emu.example", "token": TOKEN}
    page.click(".snb-pat-submit")  # empty: nothing sent, a message instead
    assert len(sent(page)) == 2 and "Paste a personal access token" in page.inner_text(".snb-error")


def test_log_in_with_speckle_polls_claims_and_hands_over(open_panel, jupyter):
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    with page.context.expect_page() as opened:
        page.click(".snb-login")
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.evaluate("window.opener") is None
    login = jupyter.logins[0]
    assert login["server"] == "https://emu.example" and len(login["flow"]) == 32
    assert login["_xsrf"] == XSRF  # the login route changes state: it takes Jupyter's XSRF token
    # the sign-in page stays one click away (a closed tab can be reopened), with the time left
    assert page.is_visible(".snb-cancel") and page.is_visible(".snb-open-link")
    assert page.text_content(".snb-open-link") == "Open the Speckle sign-in page again"
    assert page.text_content(".snb-left").endswith(" left")
    assert page.evaluate("document.activeElement.className") == "snb-cancel"  # the keyboard stays in the panel
    assert page.get_attribute(".snb-login", "disabled") is not None
    jupyter.flows[login["flow"]] = "done"
    page.wait_for_function("window.model.sent.some((m) => m.type === 'oauth')", timeout=5000)
    assert sent(page)[-1] == {"type": "oauth", "server_url": "https://emu.example", "token": TOKEN,
                              "refresh_token": REFRESH, "app_id": "emuapp0001"}
    assert jupyter.claims == [{"flow": login["flow"]}]
    assert page.is_hidden(".snb-waiting")


def test_broadcast_message_delivers_without_waiting_for_the_poll(open_panel, jupyter):
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    page.evaluate("window.open = () => null")  # blocked: the link is offered
    page.click(".snb-login")
    assert page.is_visible(".snb-open-link")
    assert page.get_attribute(".snb-open-link", "rel") == "noopener"
    href = page.get_attribute(".snb-open-link", "href")
    flow = parse_qs(urlsplit(href).query)["flow"][0]
    jupyter.flows[flow] = "done"
    page.evaluate("(flow) => new BroadcastChannel('speckle-nb-auth').postMessage("
                  "{type: 'speckle-auth', flow, status: 'done'})", flow)
    page.wait_for_function("window.model.sent.some((m) => m.type === 'oauth')", timeout=900)


def test_denied_and_cancel_leave_the_panel_usable(open_panel, jupyter):
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    page.evaluate("window.open = () => null")
    page.click(".snb-login")
    flow = parse_qs(urlsplit(page.get_attribute(".snb-open-link", "href")).query)["flow"][0]
    jupyter.flows[flow] = "denied"
    page.wait_for_function("document.querySelector('.snb-error').textContent.includes('Denied by you')")
    assert page.is_hidden(".snb-waiting") and not page.is_disabled(".snb-login")
    page.click(".snb-login")
    page.click(".snb-cancel")
    assert sent(page)[-1] == {"type": "cancel"} and page.is_hidden(".snb-waiting")
    assert "cancelled" in page.inner_text(".snb-status")


def test_login_button_only_for_oauth_servers(open_panel, jupyter):
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    page.fill(".snb-server", "https://pat-only.example")
    assert page.is_disabled(".snb-login")
    page.fill(".snb-server", "emu.example/")
    assert not page.is_disabled(".snb-login")


def test_this_machine_by_any_of_its_names_is_the_configured_server(open_panel, jupyter):
    """`localhost` for a server configured as 127.0.0.1 once got "not set up to log in to that server"."""
    jupyter.servers.append({"url": "http://127.0.0.1:3000", "name": "Local", "oauth": True})
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    for typed in ("localhost:3000", "http://localhost:3000/", "[::1]:3000", "127.0.0.1:3000"):
        page.fill(".snb-server", typed)
        assert not page.is_disabled(".snb-login"), typed
    page.fill(".snb-server", "localhost:3001")  # another port: another server
    assert page.is_disabled(".snb-login")
    page.fill(".snb-server", "htp://127.0.0.1:3000")  # a typo the kernel refuses: refused here too
    assert page.is_disabled(".snb-login")
    page.fill(".snb-server", "localhost:3000")
    page.click(".snb-login")
    page.wait_for_function("document.querySelector('.snb-open-link').href.includes('login?')")
    assert "server=http%3A%2F%2F127.0.0.1%3A3000" in page.get_attribute(".snb-open-link", "href")


def test_a_server_set_up_nowhere_signs_in_with_the_public_app_or_says_why_not(open_panel, jupyter):
    jupyter.any_server = True
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    page.fill(".snb-server", "speckle.example.org")
    assert not page.is_disabled(".snb-login")  # the extension asks that server for its connector app
    page.fill(".snb-server", "htp://speckle.example.org")  # no address the kernel would take either
    assert page.is_disabled(".snb-login")
    jupyter.any_server, jupyter.servers = False, [{"url": "https://emu.example", "name": "Emu", "oauth": True,
                                                   "app": "public"}]
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    page.fill(".snb-server", "speckle.example.org")
    assert page.is_disabled(".snb-login")
    assert "signs in with Speckle only to Emu" in page.inner_text(".snb-nooauth")
    jupyter.servers = [{"url": "https://emu.example", "name": "Emu", "oauth": False, "app": None}]
    page = open_panel()
    page.wait_for_function("document.querySelector('.snb-login').disabled")
    page.fill(".snb-server", "speckle.example.org")
    assert "public connector app is turned off" in page.inner_text(".snb-nooauth")


def test_the_waiting_panel_hides_paste_back_until_asked_and_shows_one_deadline(open_panel, jupyter):
    """On this machine the sign-in tab comes back by itself: the paste-back box once showed at once, next to two
    deadlines ("9:56 left" and "login() waits until 03:57 PM")."""
    import time

    jupyter.servers = [{"url": "https://emu.example", "name": "Emu", "oauth": True, "app": "public"}]
    page = open_panel(waiting_until=time.time() + 300)
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    assert "login() waits until" in page.inner_text(".snb-status")  # before a login starts: the only deadline
    page.evaluate("window.open = () => null")
    page.click(".snb-login")
    page.wait_for_function("document.querySelector('.snb-left').textContent.includes('left')")
    status = page.inner_text(".snb-status")
    assert "waits until" not in status and "The next cells run once you have signed in." in status
    assert page.inner_text(".snb-left").startswith(("4:", "5:00"))  # login() gives up first: its countdown
    assert page.is_hidden(".snb-paste") and page.is_visible(".snb-other-machine")
    page.click(".snb-other-machine")
    assert page.is_visible(".snb-paste") and page.is_hidden(".snb-other-machine")
    assert page.evaluate("document.activeElement.classList.contains('snb-paste-input')")


def test_the_panel_comes_into_view_when_login_starts_waiting(open_panel, jupyter):
    """Run All scrolls the notebook to its end, away from the panel that waits."""
    page = open_panel()
    page.evaluate("""() => {
        const root = document.getElementById("root");
        root.before(Object.assign(document.createElement("div"), { style: "height: 3000px" }));
        root.after(Object.assign(document.createElement("div"), { style: "height: 3000px" }));
        window.scrollTo(0, document.body.scrollHeight);
    }""")
    in_view = "(() => { const r = document.querySelector('.snb-panel').getBoundingClientRect();" \
              " return r.top < innerHeight && r.bottom > 0; })()"
    assert not page.evaluate(in_view)
    page.evaluate("window.model.update({ waiting_until: Date.now() / 1000 + 300 })")
    page.wait_for_function(in_view)
    # the notebook goes on scrolling (JupyterLab follows Run All to the last cell): the panel comes back
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function(in_view)
    # until the person scrolls themselves: then the notebook is theirs
    page.mouse.wheel(0, 200)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    # a few frames: the observer's chance to pull the panel back, which it must not take
    page.evaluate("new Promise((done) => { let n = 5; const next = () => (--n ? requestAnimationFrame(next) : done());"
                  " requestAnimationFrame(next); })")
    assert not page.evaluate(in_view)


def test_use_another_account_says_to_sign_out_of_speckle_first_and_opens_the_server(open_panel, jupyter):
    """Speckle's page approves its trusted connector app at once, as whoever is signed in to Speckle in that
    browser: on a shared classroom machine, the previous student."""
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    page.click(".snb-switch summary")
    steps = page.inner_text(".snb-switch")
    assert "sign out there" in steps and "then click Log in with Speckle again" in steps
    assert page.get_attribute(".snb-switch-link", "href") == "https://emu.example"
    page.fill(".snb-server", "localhost:3000")
    assert page.get_attribute(".snb-switch-link", "href") == "http://localhost:3000"


def test_without_the_extension_the_server_field_shows_the_default_as_its_value(open_panel, jupyter):
    jupyter.extension = False
    page = open_panel(default_server="https://speckle.example.org")
    page.wait_for_function("!document.querySelector('.snb-noext').hidden")
    assert page.input_value(".snb-server") == "https://speckle.example.org"  # once only a grey placeholder


def test_without_the_extension_says_so(open_panel, jupyter):
    jupyter.extension = False
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-noext').hidden")
    assert page.is_visible(".snb-login") and not page.is_disabled(".snb-login")  # the kernel signs in
    assert "SPECKLE_TOKEN" in page.inner_text(".snb-noext")
    assert "server extension" in page.inner_text(".snb-noext") and "connector app" in page.inner_text(".snb-noext")


def test_without_the_extension_the_kernel_makes_the_login(open_panel, jupyter):
    """The tab opens blank in the click; the kernel names the address; paste-back goes to the kernel."""
    jupyter.extension = False
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-noext').hidden")
    page.fill(".snb-server", "emu.example")
    with page.context.expect_page() as opened:
        page.click(".snb-login")
    tab = opened.value
    asked = [m for m in sent(page) if m["type"] == "kernel_login"]
    assert len(asked) == 1 and asked[0]["server"] == "https://emu.example"
    assert page.evaluate("document.activeElement.className") == "snb-cancel"
    flow = asked[0]["flow"]
    target = jupyter.url + "a-sign-in-page-the-kernel-named"
    page.evaluate("(m) => window.model.emit('msg:custom', m)",
                  {"type": "authorize", "flow": flow, "url": target, "paste": True})
    tab.wait_for_url(target)
    assert page.get_attribute(".snb-open-link", "href") == target
    assert page.is_visible(".snb-paste-input")
    page.fill(".snb-paste-input", "http://localhost:29363/?access_code=" + "c" * 42)
    page.press(".snb-paste-input", "Enter")
    assert [m for m in sent(page) if m["type"] == "paste"] == [
        {"type": "paste", "flow": flow, "pasted": "http://localhost:29363/?access_code=" + "c" * 42}]
    assert page.input_value(".snb-paste-input") == ""  # the code does not stay on the page
    page.evaluate("(m) => window.model.emit('msg:custom', m)", {"type": "flow_ended", "flow": flow})
    assert page.is_hidden(".snb-cancel") and not page.is_disabled(".snb-login")


def test_nbclassic_pages_find_the_extension_through_the_body(open_panel, jupyter):
    jupyter.nbclassic = True
    page = open_panel()
    page.wait_for_function("!document.querySelector('.snb-login').disabled")
    assert page.is_hidden(".snb-noext")
    assert page.input_value(".snb-server") == "https://emu.example"  # the extension's default server


def test_an_extension_that_refuses_is_not_called_missing(open_panel, jupyter):
    jupyter.extension = 403
    page = open_panel()
    page.wait_for_function("document.querySelector('.snb-noext').textContent.includes('HTTP 403')")
    note = page.inner_text(".snb-noext")
    assert "Reloading the page" in note and "connector app" in note and "SPECKLE_TOKEN" in note


def test_refresh_request_is_answered_through_the_extension(open_panel, jupyter):
    page = open_panel()
    ask = "(m) => window.model.emit('msg:custom', m)"
    page.evaluate(ask, {"type": "refresh", "id": "r1234567", "server_url": "https://emu.example",
                        "refresh_token": REFRESH})
    page.wait_for_function("window.model.sent.some((m) => m.type === 'refreshed')")
    assert sent(page)[-1] == {"type": "refreshed", "id": "r1234567", "token": "c3" * 21,
                              "refresh_token": "d4" * 21}
    assert jupyter.refreshes == [{"server_url": "https://emu.example", "refresh_token": REFRESH}]
    page.evaluate(ask, {"type": "refresh", "id": "r7654321", "server_url": "x", "refresh_token": "no"})
    page.wait_for_function("window.model.sent.some((m) => m.type === 'refresh_failed')")
    assert sent(page)[-1] == {"type": "refresh_failed", "id": "r7654321", "message": "Log in again."}


def test_signed_in_state_and_controls(open_panel, jupyter):
    page = open_panel(status="signed_in", user_name="Ada <b>Lovelace</b>", user_email="ada@example.com",
                      server_name="Emu", server_url="https://emu.example", variable="sp",
                      scopes=[{"name": "streams:write", "write": True, "unrequested": True}],
                      desktop_accounts=[{"label": "Ada on Emu", "server_url": "https://emu.example"}])
    assert page.inner_text(".snb-user-name") == "Ada <b>Lovelace</b>"  # text, never markup
    assert page.inner_text(".snb-variable") == "sp" and page.is_hidden(".snb-out")
    assert page.inner_text(".snb-scope-extra") == "streams:write (write)"
    page.click(".snb-remember")
    assert page.evaluate("[window.model.get('remember'), window.model.saved]") == [True, 1]
    page.click(".snb-logout")
    assert sent(page)[-1] == {"type": "logout"}
    page.evaluate("window.model.update({status: 'signed_out', error: 'Nope.'})")
    assert page.is_visible(".snb-out") and page.inner_text(".snb-error") == "Nope."
    page.click(".snb-desktop-account")
    assert sent(page)[-1] == {"type": "desktop", "index": 0}


def test_every_control_is_labelled(open_panel, jupyter):
    page = open_panel(desktop_accounts=[{"label": "Ada on Emu", "server_url": "x"}])
    unlabelled = page.evaluate("""[...document.querySelectorAll('input, button, select')]
        .filter((n) => !n.labels?.length && !n.ariaLabel && !n.textContent.trim())
        .map((n) => n.className)""")
    assert unlabelled == []
    assert page.get_attribute(".snb-status", "aria-live") == "polite"
