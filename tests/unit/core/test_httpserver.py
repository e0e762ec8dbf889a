"""The keep-alive WSGI server: HTTP/1.1 framing, keep-alive, limits, client certificates."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shared.httpserver import WSGIServer


def app(environ, start_response):  # type: ignore[no-untyped-def]
    body = environ["wsgi.input"].read()
    out = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} q={environ['QUERY_STRING']} x={environ.get('HTTP_X_A')} len={len(body)}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out]


@contextlib.contextmanager
def serving(wsgi_app: Any, **options: Any) -> Iterator[int]:
    """A WSGIServer on a loopback port, in a thread; yields the port and shuts it down after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = WSGIServer(sock, wsgi_app, None, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield sock.getsockname()[1]
    finally:
        server.shutdown()


@pytest.fixture
def port() -> Iterator[int]:
    with serving(app) as p:
        yield p


def exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(raw)
        c.shutdown(socket.SHUT_WR)
        chunks = []
        while data := c.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_two_requests_on_one_connection(port: int) -> None:
    raw = (b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\r\n"
           b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nx-a: two\r\n\r\nabc")
    out = exchange(port, raw)
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert b"GET /a q=x=1 x=one len=0" in out and b"POST /b q= x=two len=3" in out


@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET / HTTP/2.0\r\n\r\n", b"505"),
    (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", b"400"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"411"),
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413"),
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 150 + b"\r\n", b"431"),
])
def test_bad_requests_get_4xx(port: int, raw: bytes, status: bytes) -> None:
    assert exchange(port, raw).startswith(b"HTTP/1.") and status in exchange(port, raw).split(b"\r\n", 1)[0]


def test_a_network_bound_request_runs_beside_the_loop() -> None:
    """An offloaded request (e.g. an ACME challenge validation) must not stall other clients."""
    import time

    release = threading.Event()

    def slow_app(environ, start_response):  # type: ignore[no-untyped-def]
        if environ["PATH_INFO"] == "/slow":
            release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    with serving(slow_app, offload=lambda method, path: path == "/slow") as port:
        try:
            slow = socket.create_connection(("127.0.0.1", port), timeout=5)
            slow.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
            time.sleep(0.2)
            started = time.monotonic()
            fast = exchange(port, b"GET /fast HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            assert fast.endswith(b"/fast") and time.monotonic() - started < 2
            release.set()
            slow.sendall(b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")  # same connection, in order
            chunks = []
            while data := slow.recv(65536):
                chunks.append(data)
            out = b"".join(chunks)
            assert out.index(b"/slow") < out.index(b"/after")
            slow.close()
        finally:
            release.set()


def test_expect_continue_gets_an_interim_response(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 100 Continue")
        c.sendall(b"abc")
        assert b"len=3" in c.recv(65536)


def test_connection_balance_sends_new_clients_to_the_least_loaded_worker() -> None:
    from shared.httpserver import ConnectionBalance

    balance = ConnectionBalance(2)
    balance.index = 0
    balance.set(3)
    other = ConnectionBalance.__new__(ConnectionBalance)
    other.__dict__.update(balance.__dict__)
    other.index = 1
    other.set(1)
    assert not balance.should_accept(3) and other.should_accept(1)
    other.set(3)
    assert balance.should_accept(3) and other.should_accept(3)


class _RecordingGroup:
    """A commit group in the shape the loop expects: `/w/...` requests leave a write; "fail" ones fail."""

    def __init__(self) -> None:
        self.pending: dict[int, str] = {}
        self.settled: list[list[str]] = []
        self._tag = 0

    def begin(self, tag: int, environ: dict[str, object]) -> None:
        self._tag = tag
        environ["test.group"] = self

    def add(self, name: str) -> None:
        self.pending[self._tag] = name

    def holds(self, tag: int) -> bool:
        return tag in self.pending

    def settle(self) -> dict[int, tuple[str, list[tuple[str, str]], bytes]]:
        pending, self.pending = self.pending, {}
        self.settled.append(sorted(pending.values()))
        return {t: ("409 Conflict", [("Content-Type", "text/plain")], b"refused " + n.encode())
                for t, n in pending.items() if "fail" in n}


def _group_app(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ["PATH_INFO"]
    if path.startswith("/w/"):
        environ["test.group"].add(path[3:])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"done {path}".encode()]


def test_answers_wait_for_the_turns_shared_commit_and_failed_writes_are_replaced() -> None:
    group = _RecordingGroup()
    with serving(_group_app, commit_group=group) as port:
        # Pipelined on one connection: each held answer goes out after its commit, in order.
        out = exchange(port, b"GET /w/one HTTP/1.1\r\n\r\nGET /plain HTTP/1.1\r\n\r\nGET /w/fail-two HTTP/1.1\r\n\r\n")
        answers = out.split(b"HTTP/1.1 ")[1:]
        assert [a.split(b"\r\n", 1)[0] for a in answers] == [b"200 OK", b"200 OK", b"409 Conflict"]
        assert answers[0].endswith(b"done /w/one") and answers[1].endswith(b"done /plain")
        assert answers[2].endswith(b"refused fail-two")
        assert ["one"] in group.settled and ["fail-two"] in group.settled
        # Several connections at once: every write is settled exactly once, every client answered.
        conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        for i, c in enumerate(conns):
            c.sendall(f"GET /w/c{i} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        for i, c in enumerate(conns):
            data = b""
            while chunk := c.recv(65536):
                data += chunk
            c.close()
            assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(f"done /w/c{i}".encode())
        written = [n for batch in group.settled for n in batch if n.startswith("c")]
        assert sorted(written) == [f"c{i}" for i in range(6)]


def _read_response(c: socket.socket) -> bytes:
    """One whole response (Content-Length framed) from a keep-alive socket."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = c.recv(65536)
        if not data:
            return buf
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += c.recv(65536)
    return head + b"\r\n\r\n" + body


def test_after_response_work_runs_once_the_answer_is_out_and_before_the_next_request() -> None:
    """The ACME challenge model: answer first, then work, and the same connection's next request sees its outcome."""
    from shared.api.wsgi import AFTER_RESPONSE_KEY

    release = threading.Event()
    state = {"done": 0}

    def after_app(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ["PATH_INFO"]
        if path == "/start":
            def work() -> None:
                release.wait(10)
                state["done"] += 1

            environ[AFTER_RESPONSE_KEY].append(work)
        if path == "/boom":
            def fail() -> None:
                raise RuntimeError("after-work failure")

            environ[AFTER_RESPONSE_KEY].append(fail)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{path} done={state['done']}".encode()]

    with serving(after_app) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c, socket.create_connection(
            ("127.0.0.1", port), timeout=5
        ) as other:
            c.sendall(b"GET /start HTTP/1.1\r\nHost: h\r\n\r\n")
            assert _read_response(c).endswith(b"/start done=0")  # answered while the work waits
            c.sendall(b"GET /poll HTTP/1.1\r\nHost: h\r\n\r\n")
            other.sendall(b"GET /other HTTP/1.1\r\nHost: h\r\n\r\n")
            assert _read_response(other).endswith(b"/other done=0")  # other connections are not held up
            c.settimeout(0.3)
            with pytest.raises(TimeoutError):
                c.recv(1)  # this connection's next request waits for the work
            release.set()
            c.settimeout(5)
            assert _read_response(c).endswith(b"/poll done=1")
            # Work that raises is reported and the connection goes on.
            c.sendall(b"GET /boom HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n")
            assert _read_response(c).endswith(b"/boom done=1")
            assert _read_response(c).endswith(b"/after done=1")
        # A client that asks to close still gets its work done.
        release.clear()
        release.set()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /start HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            assert _read_response(c).endswith(b"/start done=1")
        for _ in range(100):
            if state["done"] == 2:
                break
            threading.Event().wait(0.02)
        assert state["done"] == 2


def test_absolute_form_targets_are_accepted_and_name_the_host() -> None:
    """RFC 9112 s.3.2.2: a server must accept `GET http://host/path`; the authority replaces Host."""

    def host_app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['PATH_INFO']} q={environ['QUERY_STRING']} host={environ.get('HTTP_HOST')}".encode()]

    with serving(host_app) as port:
        out = exchange(port, b"GET http://u@ca.example:8443/1.0/roots?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"/1.0/roots q=x=1 host=ca.example:8443")
        assert exchange(port, b"GET https://ca.example HTTP/1.1\r\n\r\n").endswith(b"/ q= host=ca.example")
        assert b" 400 " in exchange(port, b"GET ftp://ca.example/x HTTP/1.1\r\n\r\n").split(b"\r\n", 1)[0]
        assert b" 400 " in exchange(port, b"GET nonsense HTTP/1.1\r\n\r\n").split(b"\r\n", 1)[0]


def test_path_info_is_percent_decoded_as_pep_3333_says() -> None:
    """PATH_INFO: decoded, bytes as latin-1 (what Werkzeug and the Functions give); the raw target in REQUEST_URI."""
    from shared.api.wsgi import wsgi_path

    seen: dict[str, str] = {}

    def path_app(environ, start_response):  # type: ignore[no-untyped-def]
        seen.update(
            path_info=environ["PATH_INFO"], path=wsgi_path(environ),
            query=environ["QUERY_STRING"], raw=environ["REQUEST_URI"],
        )
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    with serving(path_app) as port:
        exchange(port, b"GET /acme/my%20acme/%C3%A9t%C3%A9%2Fx?q=%20 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert seen == {
        "path_info": "/acme/my acme/\u00c3\u00a9t\u00c3\u00a9/x",  # UTF-8 bytes, each as a latin-1 character
        "path": "/acme/my acme/\u00e9t\u00e9/x",
        "query": "q=%20",  # the query string stays as sent
        "raw": "/acme/my%20acme/%C3%A9t%C3%A9%2Fx?q=%20",
    }
