"""The loopback receiver over real sockets: each outcome, the port closed after it, refusals, headers, both
loopback addresses, a busy port, and what a user may paste back."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.another_user import listening_as_nobody
from support.processes import free_loopback_port, poll

from speckle_nb_auth import _receiver as receiver_module
from speckle_nb_auth._errors import ConfigurationError, LoginDenied, SpeckleAuthError
from speckle_nb_auth._port_owner import listener_uids
from speckle_nb_auth._receiver import (
    LoopbackReceiver,
    PasteNotUnderstood,
    PortBusy,
    PortHeldByAnother,
    Received,
    code_from_pasted,
)


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = _ipv6()
HOSTS = ["127.0.0.1", "[::1]"] if IPV6 else ["127.0.0.1"]


def new_code() -> str:
    return secrets.token_hex(21)


def refused(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.settimeout(2)
        try:
            probe.connect((host.strip("[]"), port))
        except ConnectionRefusedError:
            return True
    return False


def assert_closed(port: int) -> None:
    assert refused("127.0.0.1", port)
    if IPV6:
        assert refused("::1", port)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=5) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[LoopbackReceiver]:
    with LoopbackReceiver("http://localhost:0") as r:
        yield r


# --- outcomes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_a_code_is_received_on_either_loopback_address_and_the_port_closes(
    http: httpx.Client, host: str, capfd: pytest.CaptureFixture[str]
) -> None:
    results: list[Received] = []
    code = new_code()
    with LoopbackReceiver("http://localhost:0", on_result=results.append) as receiver:
        page = http.get(f"http://{host}:{receiver.port}/?access_code={code}")
        outcome = receiver.wait(5)
    assert outcome == Received("code", code)
    assert results == [outcome]
    assert page.status_code == 200
    assert "Sign-in received" in page.text and "notebook" in page.text
    assert code not in page.text
    assert code not in repr(outcome)
    assert_closed(receiver.port)
    out, err = capfd.readouterr()
    assert code not in out + err


def test_denied_is_received_and_the_port_closes(http: httpx.Client, receiver: LoopbackReceiver) -> None:
    page = http.get(f"{receiver.url}/?denied=true")
    assert receiver.wait(5) == Received("denied")
    assert page.status_code == 200 and "start again" in page.text
    assert_closed(receiver.port)


def test_nobody_coming_back_expires_and_closes_the_port() -> None:
    results: list[Received] = []
    receiver = LoopbackReceiver("http://localhost:0", lifetime=0.3, on_result=results.append).start()
    assert receiver.wait(10) == Received("expired")
    assert results == [Received("expired")]
    assert_closed(receiver.port)


def test_cancel_ends_a_pending_login_and_closes_the_port(receiver: LoopbackReceiver) -> None:
    assert receiver.wait(0.05) is None
    receiver.cancel()
    assert receiver.wait(0) == Received("cancelled")
    assert_closed(receiver.port)
    receiver.close()  # idempotent
    assert receiver.wait(0) == Received("cancelled")


def test_close_after_a_code_keeps_the_code(http: httpx.Client, receiver: LoopbackReceiver) -> None:
    code = new_code()
    http.get(f"{receiver.url}/?access_code={code}")
    receiver.close()
    assert receiver.wait(0) == Received("code", code)


def test_a_registered_path_is_the_only_one_taken(http: httpx.Client) -> None:
    code = new_code()
    with LoopbackReceiver("http://127.0.0.1:0/speckle/callback") as receiver:
        assert receiver.url == f"http://127.0.0.1:{receiver.port}/speckle/callback"
        assert http.get(f"http://127.0.0.1:{receiver.port}/?access_code={code}").status_code == 404
        assert http.get(f"{receiver.url}?access_code={code}").status_code == 200
        assert receiver.wait(5) == Received("code", code)


def test_the_page_links_back_when_told_where(http: httpx.Client) -> None:
    with LoopbackReceiver("http://localhost:0", return_url="http://127.0.0.1:8888/lab?a=1&b=2") as receiver:
        page = http.get(f"{receiver.url}/?access_code={new_code()}")
    assert 'href="http://127.0.0.1:8888/lab?a=1&amp;b=2"' in page.text
    with LoopbackReceiver("http://localhost:0", return_url="javascript:alert(1)") as receiver:
        page = http.get(f"{receiver.url}/?access_code={new_code()}")
    assert "javascript" not in page.text


# --- refusals ----------------------------------------------------------------------------------------------


def test_anything_but_a_sign_in_answer_is_refused_and_the_receiver_keeps_listening(
    http: httpx.Client, receiver: LoopbackReceiver
) -> None:
    base, code = receiver.url, new_code()
    refusals = {
        "post": http.post(f"{base}/?access_code={code}"),
        "put": http.put(f"{base}/?access_code={code}"),
        "head": http.head(f"{base}/?access_code={code}"),
        "other path": http.get(f"{base}/favicon.ico?access_code={code}"),
        "no query": http.get(f"{base}/"),
        "short code": http.get(f"{base}/?access_code={code[:-1]}"),
        "upper case": http.get(f"{base}/?access_code={code.upper()}"),
        "not hex": http.get(f"{base}/?access_code={'z' * 42}"),
        "two codes": http.get(f"{base}/?access_code={code}&access_code={code}"),
        "extra field": http.get(f"{base}/?access_code={code}&state=x"),
        "denied false": http.get(f"{base}/?denied=false"),
        "foreign host": http.get(f"{base}/?access_code={code}", headers={"Host": f"evil.example:{receiver.port}"}),
        "other port": http.get(f"{base}/?access_code={code}", headers={"Host": "localhost:1"}),
    }
    for what, answer in refusals.items():
        assert 400 <= answer.status_code < 500, what
        assert code not in answer.text and code.upper() not in answer.text, what
    assert refusals["post"].status_code == 405 and refusals["post"].headers["allow"] == "GET"
    assert refusals["other path"].status_code == 404
    assert receiver.wait(0.05) is None
    assert http.get(f"{base}/?access_code={code}").status_code == 200
    assert receiver.wait(5) == Received("code", code)


def test_a_request_from_inside_another_page_is_refused_and_the_login_goes_on(
    http: httpx.Client, receiver: LoopbackReceiver
) -> None:
    base, code = receiver.url, new_code()
    for mode, dest in (("no-cors", "image"), ("cors", "empty"), ("navigate", "iframe"), ("no-cors", "document")):
        answer = http.get(f"{base}/?denied=true", headers={"Sec-Fetch-Mode": mode, "Sec-Fetch-Dest": dest})
        assert answer.status_code == 400 and "nothing was done" in answer.text, (mode, dest)
    assert receiver.wait(0.05) is None
    tab = http.get(f"{base}/?access_code={code}", headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"})
    assert tab.status_code == 200 and receiver.wait(5) == Received("code", code)


def test_a_flood_of_idle_connections_holds_a_bounded_number_of_threads(
    http: httpx.Client, receiver: LoopbackReceiver
) -> None:
    before = threading.active_count()
    flood = [socket.create_connection(("127.0.0.1", receiver.port), timeout=5) for _ in range(60)]
    for connection in flood:
        connection.setblocking(False)

    def turned_away() -> int:
        count = 0
        for connection in flood:
            try:
                count += connection.recv(1) == b""
            except BlockingIOError:
                pass  # held by a handler thread, or not accepted yet
            except OSError:
                count += 1
        return count

    poll(lambda: turned_away() >= 60 - receiver_module._MAX_HANDLERS, timeout=10, what="the flood turned away")
    assert threading.active_count() - before <= receiver_module._MAX_HANDLERS
    for connection in flood:
        connection.close()
    code = new_code()
    poll(lambda: http.get(f"{receiver.url}/?access_code={code}").status_code == 200, timeout=10, what="an answer")
    assert receiver.wait(5) == Received("code", code)


def test_an_unreadable_request_line_is_refused_without_echoing_it(receiver: LoopbackReceiver) -> None:
    code = new_code()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as raw:
        raw.sendall(f"GET /?access_code={code} HTTP/9 x\r\n\r\n".encode())
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 400")
    assert code.encode() not in answer
    assert receiver.wait(0.05) is None


def test_every_page_carries_the_hygiene_headers(http: httpx.Client, receiver: LoopbackReceiver) -> None:
    for answer in (http.get(f"{receiver.url}/nothing"), http.get(f"{receiver.url}/?access_code={new_code()}")):
        headers = answer.headers
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        csp = headers["content-security-policy"]
        assert csp.startswith("default-src 'none';") and "frame-ancestors 'none'" in csp
        assert "python" not in headers["server"].lower()


# --- binding -----------------------------------------------------------------------------------------------


def test_a_busy_port_says_so_and_points_at_paste_back() -> None:
    with socket.socket() as desktop_service:
        desktop_service.bind(("127.0.0.1", 0))
        desktop_service.listen()
        port = desktop_service.getsockname()[1]
        with pytest.raises(PortBusy) as caught:
            LoopbackReceiver(f"http://localhost:{port}").start()
    assert caught.value.code == "port_busy"
    assert "in use" in caught.value.message and "paste" in caught.value.message
    if IPV6:
        assert refused("::1", port)  # nothing half-bound is left behind


def test_a_port_busy_on_ipv6_only_is_busy_too() -> None:
    if not IPV6:
        return  # no IPv6 loopback here: the IPv4 case above is the whole story
    port = free_loopback_port()  # free on 127.0.0.1 too: a port only ::1 chose may be another server's there
    with socket.socket(socket.AF_INET6) as other:
        other.bind(("::1", port))
        other.listen()
        with pytest.raises(PortBusy):
            LoopbackReceiver(f"http://localhost:{port}").start()
    assert refused("127.0.0.1", port)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_another_users_listener_on_the_port_is_named_and_nothing_listens(address: str) -> None:
    if address == "::1" and not IPV6:
        return  # no IPv6 loopback here: another user cannot listen there either
    port = free_loopback_port()
    with listening_as_nobody(port, address):
        with pytest.raises(PortHeldByAnother) as caught:
            LoopbackReceiver(f"http://localhost:{port}").start()
        assert 65534 in listener_uids(port)
    message = caught.value.message
    assert caught.value.code == "port_held_by_another_user" and not isinstance(caught.value, PortBusy)
    assert f"Port {port} of this machine" in message and "nobody, uid 65534" in message
    assert "personal access token" in message and "paste" not in message  # no paste-back: it would reach them
    assert refused("127.0.0.1", port) and (not IPV6 or refused("::1", port))


def test_listener_uids_reads_only_listening_sockets_on_that_port(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:72F3 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 1\n"
        "   1: 0100007F:72F3 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1002        0 2\n"
        "   2: 0100007F:72F4 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1003        0 3\n"
        "   3: garbage\n"
    )
    assert listener_uids(0x72F3, (table, tmp_path / "absent")) == {1001}


def test_without_an_ipv6_loopback_ipv4_alone_serves(monkeypatch: pytest.MonkeyPatch, http: httpx.Client) -> None:
    # ::2 is no address of this machine: binding it fails as binding ::1 does where IPv6 is off.
    monkeypatch.setattr(receiver_module, "_addresses", lambda host: [(socket.AF_INET, "127.0.0.1"),
                                                                     (socket.AF_INET6, "::2")])
    code = new_code()
    with LoopbackReceiver("http://localhost:0") as receiver:
        assert http.get(f"http://127.0.0.1:{receiver.port}/?access_code={code}").status_code == 200
        assert receiver.wait(5) == Received("code", code)


def test_the_redirect_urls_port_is_the_one_listened_on(http: httpx.Client) -> None:
    with LoopbackReceiver("http://localhost:0") as first:
        port = first.port
    with LoopbackReceiver(f"http://localhost:{port}") as receiver:
        assert receiver.port == port and receiver.url == f"http://localhost:{port}"
        for host in HOSTS:
            assert http.get(f"http://{host}:{port}/").status_code == 400  # listening on both


@pytest.mark.parametrize(
    "url", ["https://localhost:29363", "http://example.com:29363", "http://localhost:29363/?x=1", "http://u@localhost:1"]
)
def test_a_redirect_url_that_cannot_be_received_here_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError):
        LoopbackReceiver(url)


def test_a_receiver_is_used_once(receiver: LoopbackReceiver) -> None:
    with pytest.raises(RuntimeError):
        receiver.start()


# --- paste-back --------------------------------------------------------------------------------------------


def test_the_code_is_taken_from_a_pasted_address_or_a_bare_code() -> None:
    code = new_code()
    for pasted in (
        f"http://localhost:29363/?access_code={code}",
        f"http://localhost:29363?access_code={code}",
        f"  localhost:29363/?access_code={code}\n",
        f"'{code}'",
        code,
        f"access_code={code}",
    ):
        assert code_from_pasted(pasted) == code


def test_a_paste_that_holds_no_code_says_what_to_paste_without_repeating_it() -> None:
    for pasted in ("http://localhost:29363/", "hello there", "", f"http://localhost/?access_code={'q' * 42}"):
        with pytest.raises(PasteNotUnderstood) as caught:
            code_from_pasted(pasted)
        assert "access_code=" in caught.value.message
        if pasted:
            assert pasted not in caught.value.message
    with pytest.raises(LoginDenied):
        code_from_pasted("http://localhost:29363/?denied=true")
    assert issubclass(PasteNotUnderstood, SpeckleAuthError)


def test_connections_that_go_away_leave_no_trace(receiver: LoopbackReceiver, capfd: pytest.CaptureFixture[str]) -> None:
    code = new_code()
    for request in (b"", b"GET /?access_co", f"GET /?access_code={code} HTTP/1.1\r\nHost: x".encode()):
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as raw:
            raw.sendall(request)
            raw.shutdown(socket.SHUT_RDWR)
    with httpx.Client(trust_env=False) as http:
        assert http.get(f"{receiver.url}/?access_code={code}").status_code == 200
    assert receiver.wait(5) == Received("code", code)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
