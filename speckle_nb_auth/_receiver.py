"""The loopback receiver: a one-shot web listener on this machine that catches Speckle's redirect after a sign-in.

Speckle sends the browser to the app's one registered redirect URL (`http://localhost:29363` for the public
connector app) with `?access_code=<42 hex>` or `?denied=true`. `LoopbackReceiver` listens there while one login
is pending, on 127.0.0.1 and ::1 (a browser resolves `localhost` to either), takes the first well-formed answer
on the expected path, shows a page saying what happened, and closes its port. Anything else (another method or
path, a malformed code, a foreign Host) is refused with a 4xx and the receiver keeps listening.

Stdlib only (no Tornado): the server extension runs it in a thread, the kernel and the terminal login directly.
Nothing is logged: request lines carry the code. The frames that can raise hold the code only as a `Secret`
(the parsing that sees it plainly cannot raise), so a verbose traceback never shows it.
"""

from __future__ import annotations

import errno
import html
import os
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from . import _interrupts as interrupts
from ._errors import ConfigurationError, LoginDenied, SpeckleAuthError
from ._html import document, new_nonce, page_headers
from ._port_owner import PortHeldByAnother, check_port_not_held_by_another
from ._protocol import is_loopback_host
from ._secret import Secret

__all__ = [
    "CODE_LIFETIME",
    "LoopbackReceiver",
    "PasteNotUnderstood",
    "PortBusy",
    "PortHeldByAnother",
    "Received",
    "code_from_pasted",
    "is_access_code",
]

CODE_LIFETIME = 600.0  # seconds: Speckle's access codes live 10 minutes, so no login waits longer
_CODE = re.compile(r"[0-9a-f]{42}")
_HANDLER_TIMEOUT = 10.0  # seconds a connection may take to send its request or read the page
_MAX_HANDLERS = 16  # connections served at once, per address
# Errors that mean "this machine has no IPv6 loopback", not "the port is taken".
_NO_ADDRESS = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, getattr(errno, "EPROTONOSUPPORT", -1)}

Outcome = Literal["code", "denied", "expired", "cancelled"]


class PortBusy(SpeckleAuthError):
    code = "port_busy"


class PasteNotUnderstood(SpeckleAuthError):
    code = "paste_not_understood"


@dataclass(frozen=True)
class Received:
    """How a login ended: `code` (with the access code), `denied` (Deny on Speckle's page), `expired` (nobody
    came back in time) or `cancelled`."""

    kind: Outcome
    code: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.code is not None:
            object.__setattr__(self, "code", Secret(self.code))


def is_access_code(value: str) -> bool:
    return bool(_CODE.fullmatch(value))


def code_from_pasted(text: str) -> str:
    """The access code in what a user pasted: the address the sign-in tab ended on
    (`http://localhost:29363/?access_code=...`) or the bare code. The text is never repeated in an error."""
    text = Secret(text if isinstance(text, str) else "")
    code, denied = _read_pasted(text)
    if code is not None:
        return code
    if denied:
        raise LoginDenied("That address says the sign-in was denied on Speckle's page: start the login again.")
    raise PasteNotUnderstood(
        "That is not the address Speckle sent the sign-in tab to. Copy the whole address from that tab's "
        "address bar (it starts with http://localhost and holds access_code=) and paste it, or paste the "
        "42-character code that follows access_code=."
    )


def _read_pasted(text: str) -> tuple[Secret | None, bool]:
    """(the code in `text`, whether it is an address saying "denied"). Never raises."""
    cleaned = text.strip().strip("\"'<>").strip()
    if is_access_code(cleaned):
        return Secret(cleaned), False
    try:
        fields = parse_qs(urlsplit(cleaned).query if "?" in cleaned else cleaned, max_num_fields=8)
    except ValueError:  # too many fields, or an address that is not one ("http://[")
        fields = {}
    codes = fields.get("access_code", [])
    if len(codes) == 1 and is_access_code(codes[0]):
        return Secret(codes[0]), False
    return None, fields.get("denied") == ["true"]


def _read_answer(target: str) -> tuple[str, Received | None]:
    """(the path of a request's target, the answer its query holds: None when it is not one). Never raises."""
    try:
        parts = urlsplit(target)
    except ValueError:  # "//[": not an address
        return "", None
    try:
        fields = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True, max_num_fields=4)
    except ValueError:
        fields = {}
    if set(fields) == {"access_code"} and len(fields["access_code"]) == 1 and is_access_code(
        fields["access_code"][0]
    ):
        return parts.path, Received("code", fields["access_code"][0])
    if fields == {"denied": ["true"]}:
        return parts.path, Received("denied")
    return parts.path, None


class LoopbackReceiver:
    """Listens for one sign-in answer on `redirect_url` (its host must be this machine; port 0 picks a free
    port, see `url`). `start()` binds at once (a port taken by this user raises `PortBusy`, by another user
    `PortHeldByAnother`) and serves in a daemon thread;
    the port closes when an answer came, on `cancel()`/`close()`, or after `lifetime` seconds ("expired").
    `on_result` is called once, from the receiver's thread, after the port closed. `return_url` is linked
    from the page; `back_to` names where the user goes back to."""

    def __init__(
        self,
        redirect_url: str,
        *,
        lifetime: float = CODE_LIFETIME,
        return_url: str | None = None,
        on_result: Callable[[Received], None] | None = None,
        back_to: str = "the notebook",
    ) -> None:
        parts = urlsplit(redirect_url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        host = (parts.hostname or "").lower()
        odd = port == -1 or parts.username is not None or parts.query or parts.fragment
        if parts.scheme != "http" or not is_loopback_host(host) or odd:
            raise ConfigurationError(
                "The sign-in app sends users back to an address that is not a plain http address on this "
                "machine, so no listener here can receive its answer: use paste-back, or an app whose redirect "
                "URL is http://localhost:PORT."
            )
        if not lifetime > 0:
            raise ValueError("lifetime must be a positive number of seconds")
        self._host = parts.netloc.rsplit(":", 1)[0] if parts.port is not None else parts.netloc
        self._addresses = _addresses(host)
        self._wanted_port = port if port is not None else 80
        self._path = parts.path or "/"
        self._lifetime = float(lifetime)
        self._return_url = return_url if return_url and urlsplit(return_url).scheme in ("http", "https") else None
        self._on_result = on_result
        self._back_to = back_to
        self._lock = threading.Lock()
        self._servers: list[_Server] = []
        self._outcome: Received | None = None
        self._decided = threading.Event()  # an outcome is final (its page, if any, was sent)
        self._closed = threading.Event()  # the port is closed
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._port = 0

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> LoopbackReceiver:
        if self._thread is not None or self._closed.is_set():
            raise RuntimeError("this receiver was already started: make a new one for each login")
        self._servers = self._bind()
        self._port = self._servers[0].server_address[1]
        self._thread = threading.Thread(target=self._serve, name="speckle-loopback-receiver", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._port or self._wanted_port

    @property
    def url(self) -> str:
        """The redirect URL listened for, with the port actually bound."""
        path = "" if self._path == "/" else self._path
        return f"http://{self._host}:{self.port}{path}"

    def wait(self, timeout: float | None = None) -> Received | None:
        """The outcome once the port is closed; None if still pending after `timeout` seconds."""
        if self._thread is None and not self._closed.is_set():
            raise RuntimeError("start the receiver first")
        return self._outcome if interrupts.wait(self._closed, timeout) else None

    def cancel(self) -> None:
        """End a pending login ("cancelled") and close the port; an answer already received is kept."""
        self._decide(Received("cancelled"))
        if self._thread is None:
            self._closed.set()
            self._wake_r.close()
            self._wake_w.close()
        elif self._thread is not threading.current_thread():
            self._closed.wait()
            self._thread.join(5.0)  # its last act, `on_result`: nothing of this receiver outlives close()

    def close(self) -> None:
        """Idempotent: afterwards the port is closed (a pending login ends as "cancelled")."""
        self.cancel()

    def __enter__(self) -> LoopbackReceiver:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else ("listening" if self._thread else "not started")
        return f"LoopbackReceiver({self.url}, {state})"

    # --- binding --------------------------------------------------------------------------------------------

    def _bind(self) -> list[_Server]:
        """One server per loopback address, all on one port (a free one when the URL says 0)."""
        for _ in range(20 if self._wanted_port == 0 else 1):
            try:
                return self._bind_all(self._wanted_port)
            except _Retry:
                continue
        raise PortBusy("No free port was found on this machine for the sign-in listener: use paste-back instead.")

    def _bind_all(self, port: int) -> list[_Server]:
        servers: list[_Server] = []
        try:
            for family, address in self._addresses:
                try:
                    server = _Server(family, (address, port), self)
                except OSError as err:
                    if family == socket.AF_INET6 and (err.errno in _NO_ADDRESS or not socket.has_ipv6):
                        continue  # no IPv6 here: browsers then reach the IPv4 listener
                    if err.errno == errno.EADDRINUSE:
                        if self._wanted_port == 0:
                            raise _Retry from None
                        check_port_not_held_by_another(port)  # never send the person to another user's port
                        raise self._busy() from None
                    raise ConfigurationError(
                        f"Could not listen on port {port} of this machine for the sign-in answer "
                        f"({os.strerror(err.errno) if err.errno else 'unknown error'}): use paste-back instead."
                    ) from None
                servers.append(server)
                port = server.server_address[1]
            if not servers:
                raise ConfigurationError("This machine has no loopback address to listen on: use paste-back.")
            return servers
        except BaseException:
            for server in servers:
                server.server_close()
            raise

    def _busy(self) -> PortBusy:
        return PortBusy(
            f"Port {self._wanted_port} on this machine is already in use (by Speckle's desktop service or "
            "another login waiting there), so this login cannot listen for Speckle's answer. Sign in in the "
            "browser anyway, then paste the address of the page it ends on (paste-back)."
        )

    # --- serving --------------------------------------------------------------------------------------------

    def _serve(self) -> None:
        deadline = time.monotonic() + self._lifetime
        try:
            with selectors.DefaultSelector() as selector:
                for server in self._servers:
                    selector.register(server, selectors.EVENT_READ, server)
                selector.register(self._wake_r, selectors.EVENT_READ, None)
                while not self._decided.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._decide(Received("expired"))
                        break
                    for key, _ in selector.select(remaining):
                        if key.data is not None:
                            key.data.handle_request()
                # An answer claimed while time ran out still has its page being sent: let it finish.
                self._decided.wait(_HANDLER_TIMEOUT + 5)
        finally:
            for server in self._servers:
                server.server_close()
            self._wake_r.close()
            self._wake_w.close()
            self._closed.set()
        if self._on_result is not None and self._outcome is not None:
            self._on_result(self._outcome)

    def _decide(self, outcome: Received) -> None:
        with self._lock:
            if self._outcome is None:
                self._outcome = outcome
            elif not self._decided.is_set() and outcome.kind not in ("code", "denied"):
                return  # an answer is being delivered: its handler decides once its page is sent
            self._decided.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass  # already closed: the serving loop has ended

    def _claim(self, outcome: Received) -> bool:
        """The first answer wins; later ones (a second tab, a reload) are refused."""
        with self._lock:
            if self._outcome is not None:
                return False
            self._outcome = outcome
            return True

    def _handle(self, request: _Handler) -> None:
        if not request.path.startswith("/") or not self._host_ok(request.headers.get("Host", "")):
            return request.page(400, "Not a sign-in answer", "This address only takes Speckle's sign-in answer.")
        path, outcome = _read_answer(request.path)
        if path != self._path:
            return request.page(404, "Not found", "This address only takes Speckle's sign-in answer.")
        if not _navigated(request.headers):
            return request.page(
                400, "Not a sign-in answer",
                "Speckle's answer arrives when the sign-in tab itself is sent here; this request came from inside "
                "another page (an image, a script): nothing was done.",
            )
        if outcome is not None and outcome.kind == "code":
            title, message = "Sign-in received", (
                f"Speckle has answered. Go back to {self._back_to}, where the sign-in finishes; you can close "
                "this tab."
            )
        elif outcome is not None:
            title, message = "Sign-in cancelled", (
                f"You chose not to allow access on Speckle's page. Go back to {self._back_to} to start again."
            )
        else:
            return request.page(
                400, "Not a sign-in answer", "This is not an answer from Speckle's sign-in: nothing was done."
            )
        if not self._claim(outcome):
            return request.page(
                409, "Sign-in already answered",
                f"This login already received its answer: go back to {self._back_to}.",
            )
        try:
            link = (self._return_url, f"Back to {self._back_to}") if self._return_url else None
            request.page(200, title, message, link)
        finally:
            self._decide(outcome)

    def _host_ok(self, host: str) -> bool:
        """The Host a browser sends for the redirect URL: a loopback name with our port (a page elsewhere
        that rebinds a DNS name to 127.0.0.1 sends its own name)."""
        try:
            parts = urlsplit(f"//{host}")
            return (parts.port or 80) == self.port and is_loopback_host(parts.hostname or "")
        except ValueError:
            return False


def _navigated(headers: Any) -> bool:
    """Whether the browser says this request is the tab's own navigation. Speckle's redirect always is; an
    `<img>` or a `fetch()` from another loopback page is not, and must not end the login. A client that sends no
    Fetch Metadata (curl, an old browser) says nothing either way and is taken at its word."""
    mode, dest = headers.get("Sec-Fetch-Mode"), headers.get("Sec-Fetch-Dest")
    return mode in (None, "navigate") and dest in (None, "document")


def _addresses(host: str) -> list[tuple[socket.AddressFamily, str]]:
    if host == "localhost":
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    if ":" in host:
        return [(socket.AF_INET6, host)]
    return [(socket.AF_INET, host)]


class _Retry(Exception):
    """A free port for one address family was taken on the other: try another."""


class _Server(ThreadingHTTPServer):
    """One loopback address's listener: a thread per connection, at most `_MAX_HANDLERS` at once (a flood of
    idle connections from another local program must not grow the process without bound)."""

    daemon_threads = True
    # Windows lets SO_REUSEADDR take over a port another program listens on: never there.
    allow_reuse_address = os.name != "nt"
    allow_reuse_port = False
    timeout = 0  # `handle_request` is called only when a connection is waiting
    request_queue_size = 64  # a burst of connections is accepted (and the extra ones closed), not left to retry

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int], receiver: LoopbackReceiver) -> None:
        self.address_family = family
        self.receiver = receiver
        self._slots = threading.BoundedSemaphore(_MAX_HANDLERS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many at once: a browser that was turned away retries
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent, like the handler's log: a browser that closed the tab early is no error of ours."""

    def server_bind(self) -> None:
        if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        TCPServer.server_bind(self)  # not HTTPServer's: it looks the host name up in DNS
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "speckle-nb-auth"
    sys_version = ""
    timeout = _HANDLER_TIMEOUT

    def do_GET(self) -> None:
        self.server.receiver._handle(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every other method
            return self._refuse_method
        raise AttributeError(name)

    def _refuse_method(self) -> None:
        self.page(405, "Method not allowed", "This address only takes Speckle's sign-in answer.", allow="GET")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request lines, ...): its default page repeats the request line."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # an unread request line: answer in 1.0
            self.request_version = "HTTP/1.0"
        if not hasattr(self, "command"):
            self.command = ""
        self.page(code if 400 <= code < 600 else 400, "Bad request", "This request could not be read.")

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines carry the access code."""

    def page(
        self, status: int, title: str, message: str, link: tuple[str, str] | None = None, *, allow: str = ""
    ) -> None:
        """Send one of the receiver's pages; `link` is (address, text)."""
        nonce = new_nonce()
        anchor = (
            f'<p><a href="{html.escape(link[0], quote=True)}" rel="noreferrer">{html.escape(link[1])}</a></p>'
            if link
            else ""
        )
        body = document(nonce, title, message, after=anchor, script=_SCRIPT.format(nonce=nonce)).encode("utf-8")
        self.send_response(status)
        for name, value in page_headers(nonce).items():
            self.send_header(name, value)
        if allow:
            self.send_header("Allow", allow)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


# The script takes the code out of the address bar and the history: the page stays, the code does not.
_SCRIPT = """<script nonce="{nonce}">
try {{ history.replaceState(null, "", location.pathname); }} catch (err) {{ /* the page works without it */ }}
</script>"""
