"""The HTTP front against hostile clients, over raw sockets (issue 12, items 8, 12 and 14; issue 18, item 5).

Every case asserts the same three things: the offending connection gets a 4xx
or is closed, other clients keep being served, and the loop (the worker) is
still alive afterwards. Deadlines are small here so each case takes well
under a second or two.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.httpserver import Limits
from tests.unit.core.test_httpserver import app, exchange, serving

FAST = Limits(header_timeout=0.5, request_timeout=1.0, idle_timeout=2.0, max_body=1000)


@pytest.fixture
def port() -> Iterator[int]:
    with serving(app, limits=FAST) as p:
        yield p


def status_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def read_until_closed(c: socket.socket) -> bytes:
    chunks = []
    try:
        while data := c.recv(65536):
            chunks.append(data)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def still_serving(port: int) -> None:
    """A well-formed request from another client is answered: the loop survived."""
    out = exchange(port, b"GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and b"GET /ok" in out, out


def test_an_http_0_9_request_line_gets_400_at_once(port: int) -> None:
    """`GET /` with no version: today the server waits for a blank line the client never sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
        c.sendall(b"GET /\r\n")  # and nothing more, as an HTTP/0.9 client does
        started = time.monotonic()
        out = read_until_closed(c)
    # A 400 (not FAST's 0.5 s header deadline's 408), well before the client would give up.
    assert status_of(out) == b"HTTP/1.1 400 Bad Request" and time.monotonic() - started < 2
    still_serving(port)


@pytest.mark.parametrize("line", [b"GARBAGE / FOO", b"GET / HTTP/1.1 extra", b"GET  / HTTP/1.1", b"G\x00T / HTTP/1.1",
                                  b"GET / http/1.1", b"GET / HTTP/1.10", b"GET /\x7f HTTP/1.1", b"GARBAGE"])
def test_a_garbage_request_line_gets_400(port: int, line: bytes) -> None:
    assert status_of(exchange(port, line + b"\r\nHost: h\r\n\r\n")) == b"HTTP/1.1 400 Bad Request"
    still_serving(port)


def test_only_a_well_formed_other_version_gets_505(port: int) -> None:
    assert b" 505 " in status_of(exchange(port, b"GET / HTTP/2.0\r\n\r\n"))
    assert b" 505 " in status_of(exchange(port, b"GET / HTTP/0.9\r\n\r\n"))


@pytest.mark.parametrize("raw,status", [
    # Each of these killed the worker: `int()` or `urlsplit` raised outside the protocol-error handler.
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \xb2\r\n\r\n", b"400"),  # latin-1 superscript two
    pytest.param(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"1" * 4401 + b"\r\n\r\n", b"413", id="4401-digits"),
    (b"GET http://[/ HTTP/1.1\r\nHost: h\r\n\r\n", b"400"),
    # Odd but harmless numbers and targets.
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc", b"400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3 3\r\n\r\nabc", b"400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x3\r\n\r\nabc", b"400"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1001\r\n\r\n", b"413"),
    (b"GET http://[::1 HTTP/1.1\r\n\r\n", b"400"),
    (b"GET http:///x HTTP/1.1\r\n\r\n", b"400"),
    (b"GET http://a\"b/x HTTP/1.1\r\n\r\n", b"400"),  # the authority becomes Host: checked as one
    (b"GET //x:y@[/ HTTP/1.1\r\n\r\n", b"200"),  # origin-form: a path, never parsed as a URL
    pytest.param(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"414", id="9000-byte-target"),
])
def test_odd_lengths_and_targets_get_4xx_and_the_worker_lives(port: int, raw: bytes, status: bytes) -> None:
    assert b" " + status + b" " in status_of(exchange(port, raw))
    still_serving(port)


def test_leading_zeros_and_empty_lines_before_a_request_are_fine(port: int) -> None:
    out = exchange(port, b"\r\n\r\nPOST /z HTTP/1.1\r\nHost: h\r\nContent-Length: 0003\r\nConnection: close\r\n\r\nabc")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"len=3")


@pytest.mark.parametrize("raw", [
    # Request smuggling: a head that two parsers could frame two ways is refused, never guessed at.
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 5\r\n\r\nabcde",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A\x00B: v\r\n\r\n",  # NUL in a name
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A\rB: v\r\n\r\n",  # bare CR in a name
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A : v\r\n\r\n",  # space before the colon
    b"GET / HTTP/1.1\r\nHost: h\r\nX(A): v\r\n\r\n",  # not a token
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",  # NUL in a value
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",  # bare CR in a value
    b"GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n",  # no name
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two Hosts
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: u@evil\r\n\r\n",
])
def test_heads_that_could_be_read_two_ways_get_400_and_close(port: int, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as c:
        c.sendall(raw + b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
        out = read_until_closed(c)  # closed after the 400: nothing after it is read as a request
    assert status_of(out) == b"HTTP/1.1 400 Bad Request" and b"smuggled" not in out
    still_serving(port)


def test_one_header_over_the_head_limit_gets_431_and_the_worker_lives(port: int) -> None:
    """Oversized heads: a single 65 KiB header value (the head limit is 64 KiB) is refused, not buffered on."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"x" * (65 * 1024) + b"\r\n\r\n")
        out = read_until_closed(c)
    assert status_of(out) == b"HTTP/1.1 431 Request Header Fields Too Large"
    still_serving(port)


def test_a_head_that_never_ends_is_refused_at_the_limit_not_at_its_deadline(port: int) -> None:
    """70 KiB of one header line and no end: 431 as soon as the buffer passes the limit (FAST's deadline is 0.5 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"x" * (70 * 1024))
        started = time.monotonic()
        out = read_until_closed(c)
        elapsed = time.monotonic() - started
    assert status_of(out) == b"HTTP/1.1 431 Request Header Fields Too Large" and elapsed < FAST.header_timeout
    still_serving(port)


def test_many_slow_clients_do_not_hold_up_a_newcomer() -> None:
    """Slowloris against the whole worker: 40 connections dripping heads or bodies tie up nothing a
    newcomer needs (the loop buffers a request before the app sees it; no thread waits on a client).
    The deadlines here are long, so the newcomer is served beside them, not after they are cut off."""
    with serving(app, limits=Limits(header_timeout=10.0, request_timeout=20.0)) as port:
        slow = []
        try:
            for _ in range(40):  # paced: the test server's listen backlog is 8
                slow.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                time.sleep(0.01)
            for i, c in enumerate(slow):
                c.sendall(b"POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nb" if i % 2
                          else b"GET /s HTTP/1.1\r\nHost: h\r\nX-Drip: 1\r\n")
            time.sleep(0.2)
            for c in slow:
                c.sendall(b"b" if slow.index(c) % 2 else b"X-Drip: 2\r\n")
            started = time.monotonic()
            still_serving(port)
            assert time.monotonic() - started < 2.0
        finally:
            for c in slow:
                c.close()


def test_a_chunked_upload_without_content_length_still_gets_411(port: int) -> None:
    assert b" 411 " in status_of(exchange(port, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))


def test_the_body_limit_applies_before_the_body_is_read() -> None:
    """A Content-Length over the limit is refused at once, without waiting for (or buffering) the body."""
    with serving(app, limits=Limits(max_body=64 * 1024)) as port, socket.create_connection(
        ("127.0.0.1", port), timeout=3
    ) as c:
        c.sendall(b"POST /sign HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n" + b"x" * 1000)
        out = read_until_closed(c)
        assert status_of(out) == b"HTTP/1.1 413 Content Too Large" and b"larger than 65536 bytes" in out


def _drip(port: int, at_once: bytes, dripped: bytes, every: float, results: list[bytes]) -> None:
    """Send `at_once`, then `dripped` one byte at a time (a slowloris client); record the server's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        try:
            c.sendall(at_once)
            for i in range(len(dripped)):
                c.sendall(dripped[i : i + 1])
                time.sleep(every)
        except OSError:  # closed by the server
            pass
        results.append(read_until_closed(c))


@pytest.mark.parametrize("at_once,dripped,deadline", [
    pytest.param(b"", b"GET /slow-head HTTP/1.1\r\nHost: h\r\nX-Padding: " + b"p" * 200 + b"\r\n\r\n", 0.5,
                 id="slow-head"),
    pytest.param(b"POST /slow-body HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n", b"b" * 100, 1.0,
                 id="slow-body"),
])
def test_a_client_that_drips_bytes_is_cut_off_by_its_deadline(
    port: int, at_once: bytes, dripped: bytes, deadline: float
) -> None:
    """Bytes never push a deadline back: 0.5 s for the head, 1 s for the whole request (FAST)."""
    results: list[bytes] = []
    started = time.monotonic()
    slow = threading.Thread(target=_drip, args=(port, at_once, dripped, 0.05, results))
    slow.start()
    time.sleep(0.2)
    still_serving(port)  # served while the slow client holds its connection
    slow.join(10)
    elapsed = time.monotonic() - started
    assert results and status_of(results[0]) == b"HTTP/1.1 408 Request Timeout"
    # Cut off at its own deadline: not before it, and not the 75 s idle timeout restarted per byte.
    assert deadline <= elapsed < deadline + 2.0
    still_serving(port)


def test_an_idle_keep_alive_connection_is_closed_quietly(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        out = read_until_closed(c)  # answered, then closed after FAST.idle_timeout
    assert out.count(b"HTTP/1.1 ") == 1 and b"408" not in out


def test_many_idle_connections_do_not_lock_out_a_new_client() -> None:
    """At the per-worker cap, the idle connection nearest its deadline makes room for the newcomer."""
    with serving(app, limits=Limits(max_connections=4)) as port:
        idle = [socket.create_connection(("127.0.0.1", port), timeout=3) for _ in range(12)]
        try:
            time.sleep(0.2)
            still_serving(port)
            closed = 0
            for c in idle:
                c.settimeout(0.05)
                try:
                    closed += c.recv(1) == b""
                except (TimeoutError, ConnectionResetError):
                    pass
            assert closed >= 8  # the server holds at most 4, so the rest were let go
        finally:
            for c in idle:
                c.close()


def test_at_the_cap_with_busy_clients_a_newcomer_waits_for_a_deadline_not_forever() -> None:
    with serving(app, limits=Limits(max_connections=2, header_timeout=0.5)) as port:
        busy = [socket.create_connection(("127.0.0.1", port), timeout=3) for _ in range(2)]
        try:
            for c in busy:
                c.sendall(b"GET /partial HTTP/1.1\r\n")  # a head begun, never finished: not idle
            time.sleep(0.1)
            still_serving(port)  # queued until a busy one's header deadline frees its slot
            assert all(status_of(read_until_closed(c)) == b"HTTP/1.1 408 Request Timeout" for c in busy)
        finally:
            for c in busy:
                c.close()


def _bad_header_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path = environ["PATH_INFO"]
    if path == "/not-latin-1":
        start_response("200 OK", [("X-Name", "\u20ac")])
    elif path == "/split":
        start_response("200 OK", [("X-Name", "a\r\nSet-Cookie: x=1")])
    elif path == "/bad-status":
        start_response("OK", [])
    elif path == "/raises":
        raise RuntimeError("app bug")
    else:
        start_response("200 OK", [])
    return [path.encode()]


@pytest.mark.parametrize("path", ["/not-latin-1", "/split", "/bad-status", "/raises"])
def test_an_answer_that_cannot_be_sent_is_a_500_for_that_request_only(path: str) -> None:
    """Framing errors used to escape the loop (the worker died); now that one request gets a 500."""
    offload = path == "/raises"  # and on the thread pool: the connection is handed back, not left hanging
    with serving(_bad_header_app, offload=(lambda m, p: offload)) as port:
        out = exchange(port, f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert status_of(out) == b"HTTP/1.1 500 Internal Server Error" and b"Set-Cookie" not in out
        out = exchange(port, b"GET /fine HTTP/1.1\r\nHost: h\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"/fine")
