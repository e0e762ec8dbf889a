"""A single-threaded, event-driven HTTP/1.1 WSGI server with TLS and keep-alive.

Why not Werkzeug's `run_simple`: its development server closes every
connection after one response (and waits 10 ms draining the socket), so each
request pays a TLS handshake; at thousands of certificates per second that
dominates.

Why not a thread per connection (what this module was first): issuing a
certificate is CPU work under the GIL (token and CSR checks, signing, the
SQLite commit), so extra threads never add throughput inside one process;
they only add GIL hand-offs, and with 4-16 busy connections those hand-offs
cost about a third more CPU per certificate than serving the same
connections from one thread. `cirrus up` gets parallelism from one process
per core instead (sharing one listening socket), so each worker runs this loop: non-blocking
sockets under `selectors` (epoll), TLS handshakes and reads driven by
readiness, and each complete request handed to the WSGI app inline.

Requests that wait on the network rather than the CPU (an ACME challenge
validation fetching from the client, or a forward to a remote issuer) must
not stall the other connections, so the caller can name them with the
`offload(method, path)` predicate: those run on a small thread pool and their
responses are written by the loop when they finish.

A request may leave work for after its answer is written (an ACME challenge
validation, RFC 8555 s.7.5.1: answer "processing", then validate): the app
appends callables to `environ[AFTER_RESPONSE_KEY]`. They run on the thread
pool once the answer is handed to the socket, and the connection reads its
next request only when they are done, so a client polling on the same
connection sees their outcome; other connections are not held up.

With a `commit_group`, requests answered inline in one turn of the loop may
leave their store writes for one shared commit at the end of the turn (group
commit, see `shared.groupcommit`): their answers are held until it is done,
and replaced by an error answer if their write failed.

The HTTP handling is deliberately small: request line and headers (strict,
bounded), `Content-Length` bodies only (chunked uploads get 411), keep-alive
per HTTP/1.1, `Expect: 100-continue`, pipelined requests answered in order,
an idle timeout, and the verified client certificate (the TLS layer checks it
against the roots) passed as `SSL_CLIENT_CERT`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import logging
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Offload = Callable[[str, str], bool]
COMMIT_GROUP_KEY = "cirrus.commit_group"  # where a request finds the loop's group (shared.groupcommit.ENVIRON_KEY)
AFTER_RESPONSE_KEY = "cirrus.after_response"  # a list the app may append after-answer work to (see above)


def wsgi_text(value: str) -> str:
    """A WSGI (latin-1) string as the UTF-8 text it carries, decoded as Werkzeug decodes paths."""
    return value.encode("latin-1").decode("utf-8", "replace")


def wsgi_path(environ: dict[str, Any]) -> str:
    """The request path as Werkzeug's `Request.path` gives it (decoded, one leading slash)."""
    return "/" + wsgi_text(environ.get("PATH_INFO", "")).lstrip("/")


def wsgi_body(environ: dict[str, Any]) -> tuple[int | None, Callable[[int], bytes]]:
    """`(Content-Length or None, read(n))`: a reader that never reads past the declared length."""
    text = environ.get("CONTENT_LENGTH") or ""
    length = int(text) if text.isdigit() else None
    stream = environ["wsgi.input"]
    return length, lambda n: stream.read(min(n, length or 0))


def after_response(environ: dict[str, Any]) -> list[Callable[[], None]] | None:
    """The list a request may leave after-answer work in (`AFTER_RESPONSE_KEY`), if its server runs any."""
    after = environ.get(AFTER_RESPONSE_KEY)
    return after if isinstance(after, list) else None


class CommitGroup(Protocol):
    """Writes that requests answered in one loop turn leave for a shared commit (`shared.groupcommit`)."""

    def begin(self, tag: int, environ: dict[str, Any]) -> None:
        """The request `tag` is about to run with `environ`."""

    def holds(self, tag: int) -> bool:
        """Whether request `tag`'s answer must wait for `settle()`."""

    def settle(self) -> dict[int, tuple[str, list[tuple[str, str]], bytes]]:
        """Commit; return (status, headers, body) for held requests whose write failed. Never raises."""

MAX_BODY = 1024 * 1024  # hard transport cap; the app enforces its own, smaller limit
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_LINES = 100
IDLE_TIMEOUT = 75.0
HANDSHAKE_TIMEOUT = 10.0
READ_CHUNK = 64 * 1024

_HANDSHAKE, _READING, _BUSY, _WRITING, _CLOSED = range(5)
_HOP_BY_HOP = frozenset(("content-length", "connection", "transfer-encoding"))


class _Headers:
    """Request headers: case-insensitive `get` and the raw `items()`."""

    __slots__ = ("_by_name", "_items")

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._by_name: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        key = name.lower()
        self._by_name[key] = f"{self._by_name[key]}, {value}" if key in self._by_name else value

    def get(self, name: str, default: Any = None) -> Any:
        return self._by_name.get(name.lower(), default)

    def replace(self, name: str, value: str) -> None:
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]
        self._by_name.pop(key, None)
        self.add(name, value)

    def items(self) -> list[tuple[str, str]]:
        return self._items


class _ProtocolError(Exception):
    """A request the server refuses before the app sees it (status, message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Request:
    __slots__ = ("body", "close", "headers", "method", "path", "version")

    def __init__(self, method: str, path: str, version: str, headers: _Headers, body: bytes, close: bool) -> None:
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers
        self.body = body
        self.close = close


class _Conn:
    """One client connection's state; only the loop thread touches it."""

    __slots__ = (
        "addr", "after", "close_after", "continued", "deadline", "eof", "fd", "inbuf", "out", "peer_pem", "sock",
        "state", "want_write",
    )

    def __init__(self, sock: socket.socket, addr: Any, tls: bool) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.eof = False  # the client half-closed: answer what is buffered, then close
        self.addr = addr
        self.state = _HANDSHAKE if tls else _READING
        self.inbuf = bytearray()
        self.out = b""
        self.close_after = False
        self.peer_pem: str | None = None
        self.continued = False  # a 100 Continue was sent for the request being read
        self.want_write = False
        self.after: list[Callable[[], None]] | None = None  # work to run once the answer being written is sent
        self.deadline = time.monotonic() + (HANDSHAKE_TIMEOUT if tls else IDLE_TIMEOUT)


def _parse_head(head: bytes) -> tuple[str, str, str, _Headers, bool]:
    """Request line and headers, strictly; returns method, target, version, headers, close."""
    lines = head.split(b"\n")
    request_line = lines[0].rstrip(b"\r").decode("iso-8859-1")
    words = request_line.split()
    if len(words) != 3:
        raise _ProtocolError(400, "Bad request syntax")
    method, target, version = words
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _ProtocolError(505, "HTTP version not supported")
    absolute = None
    if not target.startswith("/") and target != "*":
        # absolute-form, which a server must accept (RFC 9112 s.3.2.2): its authority replaces Host.
        absolute = urlsplit(target)
        if absolute.scheme not in ("http", "https") or not absolute.netloc:
            raise _ProtocolError(400, "Bad request target")
        target = (absolute.path or "/") + (f"?{absolute.query}" if absolute.query else "")
    if len(lines) - 1 > MAX_HEADER_LINES:
        raise _ProtocolError(431, "Too many headers")
    headers = _Headers()
    for raw in lines[1:]:
        line = raw.rstrip(b"\r").decode("iso-8859-1")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _ProtocolError(400, "Bad header line")
        headers.add(name, value.strip())
    if absolute is not None:
        headers.replace("Host", absolute.netloc.rpartition("@")[2])
    connection = (headers.get("Connection") or "").lower()
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    return method, target, version, headers, close


def _error_bytes(status: int, message: str) -> bytes:
    body = ('{"status":%d,"message":"%s"}' % (status, message.replace('"', "'"))).encode()  # noqa: UP031
    reason = _REASONS.get(status, "Error")
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body


_REASONS = {
    400: "Bad Request", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class ConnectionBalance:
    """Open-connection counts of sibling worker processes, in memory shared across fork.

    Workers share one listening socket; left alone, whichever wakes first takes
    a new connection, and a handful of long-lived keep-alive clients can all land
    on one worker while another core idles. A worker stops listening while it
    holds more connections than the least-loaded sibling, so new clients go to
    the emptiest worker. Each worker writes only its own slot; a stale read only
    delays the rebalancing by one loop turn.
    """

    def __init__(self, workers: int) -> None:
        import mmap

        self._mem = mmap.mmap(-1, 8 * max(1, workers))
        self._counts = memoryview(self._mem).cast("q")
        self.index = 0

    def set(self, count: int) -> None:
        """Publish this worker's connection count."""
        self._counts[self.index] = count

    def should_accept(self, count: int) -> bool:
        """True when this worker is among the least loaded."""
        return count <= min(self._counts)


class WSGIServer:
    """Serves a WSGI app on a listening socket it is handed (inherited by every worker process)."""

    def __init__(
        self,
        sock: socket.socket,
        app: WSGIApp,
        ssl_context: ssl.SSLContext | None,
        *,
        offload: Offload | None = None,
        offload_threads: int = 8,
        balance: ConnectionBalance | None = None,
        commit_group: CommitGroup | None = None,
        after_turn: Callable[[], None] | None = None,
    ) -> None:
        """`after_turn` runs at the end of every turn of the loop (at least every poll interval)
        and when it stops: a worker writes its batched log lines there (`shared.linelog`)."""
        self.socket = sock
        self.app = app
        self.tls = ssl_context is not None
        self._ssl = ssl_context
        self._offload = offload
        self._offload_threads = offload_threads
        self._balance = balance
        self._listening = False
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        host, port = sock.getsockname()[:2]
        self.server_address = (host, port)
        self._server_name, self._server_port = str(host), str(port)
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}
        self._done: collections.deque[tuple[_Conn, bytes, bool]] = collections.deque()
        self._group = commit_group
        self._after_turn = after_turn
        self._tag = 0
        self._held: list[tuple[_Conn, _Request, bytes, bool, int]] = []
        self._rbuf = bytearray(READ_CHUNK)
        self._rview = memoryview(self._rbuf)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    # ----------------------------------------------------------------- lifecycle

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the loop until `shutdown()` (from another thread or a signal handler's thread)."""
        self._stopped.clear()
        self.socket.setblocking(False)
        self._listen(True)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        next_sweep = time.monotonic() + 1.0
        try:
            while not self._stop.is_set():
                if self._balance is not None:
                    self._balance.set(len(self._conns))
                    self._listen(self._balance.should_accept(len(self._conns)))
                for key, mask in self._sel.select(poll_interval):
                    conn = key.data
                    if conn is None:
                        if key.fileobj is self.socket:
                            self._accept()
                        else:
                            self._drain_wake()
                    elif mask & selectors.EVENT_WRITE and conn.want_write:
                        self._on_writable(conn)
                    else:
                        self._on_readable(conn)
                if self._held:
                    self._settle()
                if self._done:
                    self._finish_offloaded()
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + 1.0
                if self._after_turn is not None:
                    self._after_turn()
        finally:
            if self._held:  # answers waiting on the shared commit: record them, then answer
                self._settle()
            if self._after_turn is not None:
                self._after_turn()
            self._listen(False)
            try:
                self._sel.unregister(self._wake_r)
            except (KeyError, ValueError):
                pass
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._finish_offloaded()
            self._stopped.set()

    def _listen(self, on: bool) -> None:
        if on and not self._listening:
            self._sel.register(self.socket, selectors.EVENT_READ, None)
        elif not on and self._listening:
            self._sel.unregister(self.socket)
        self._listening = on

    def shutdown(self) -> None:
        """Stop the loop and wait for it to return; call from another thread."""
        self._stop.set()
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        """Close every connection and the listening socket."""
        for conn in list(self._conns.values()):
            self._close(conn)
        self._sel.close()
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()

    # ----------------------------------------------------------------- events

    def _accept(self) -> None:
        # One connection per wake-up: worker processes share the listening socket, and a
        # worker that is busy answering should leave the next client to a free one.
        try:
            raw, addr = self.socket.accept()
        except OSError:  # EAGAIN (another worker took it), EMFILE and friends: wait for the next event
            return
        raw.setblocking(False)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sock: socket.socket = raw
        if self._ssl is not None:
            try:
                sock = self._ssl.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                raw.close()
                return
        conn = _Conn(sock, addr, self._ssl is not None)
        self._conns[conn.fd] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)
        if conn.state == _HANDSHAKE:
            self._handshake(conn)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _sweep(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.state != _BUSY and now > conn.deadline:
                self._close(conn)

    def _handshake(self, conn: _Conn) -> None:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, write=False)
            return
        except ssl.SSLWantWriteError:
            self._watch(conn, write=True)
            return
        except (OSError, ValueError):
            self._close(conn)
            return
        der = sock.getpeercert(binary_form=True)
        conn.peer_pem = ssl.DER_cert_to_PEM_cert(der) if der else None
        conn.state = _READING
        conn.deadline = time.monotonic() + IDLE_TIMEOUT
        self._watch(conn, write=False)
        self._read(conn)  # data may have arrived with the last handshake flight

    def _on_readable(self, conn: _Conn) -> None:
        if conn.state == _HANDSHAKE:
            self._handshake(conn)
        elif conn.state == _READING:
            self._read(conn)
        elif conn.state == _WRITING:  # a TLS write that needed a read first
            self._on_writable(conn)

    def _on_writable(self, conn: _Conn) -> None:
        if conn.state == _HANDSHAKE:
            self._handshake(conn)
        elif conn.state == _READING and not conn.out:  # a TLS read that needed a write first
            self._watch(conn, write=False)
            self._read(conn)
        else:
            self._flush(conn)
            if conn.state == _READING:  # pipelined requests waited behind this response
                self._process(conn)

    def _read(self, conn: _Conn) -> None:
        """Read everything the socket has (so no TLS plaintext is left unseen by epoll), then answer."""
        sock = conn.sock
        cap = MAX_BODY + MAX_HEADER_BYTES + 4  # one maximal request; more waits until that is answered
        while conn.state == _READING and not conn.eof:
            got = False
            full = False
            while True:
                try:
                    # Into the loop's one buffer: `recv(n)` allocates n bytes per call, and at this
                    # size the allocator maps and unmaps fresh pages for every read.
                    n = sock.recv_into(self._rbuf)
                except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                    break
                except ssl.SSLWantWriteError:  # TLS must send first (e.g. session tickets): wait to write
                    self._watch(conn, write=True)
                    return
                except (OSError, ValueError):
                    self._close(conn)
                    return
                if not n:
                    conn.eof = True
                    break
                conn.inbuf += self._rview[:n]
                got = True
                if len(conn.inbuf) >= cap:
                    full = True
                    break
            if got:
                conn.deadline = time.monotonic() + IDLE_TIMEOUT
            self._process(conn)
            if not full:
                return
        if conn.state == _READING and conn.eof:
            self._process(conn)

    # ----------------------------------------------------------------- requests

    def _process(self, conn: _Conn) -> None:
        """Answer every complete request in the buffer, in order, until one must wait."""
        while conn.state == _READING:
            try:
                request = self._take_request(conn)
            except _ProtocolError as exc:
                conn.inbuf.clear()
                self._send(conn, _error_bytes(exc.status, exc.message), close=True)
                return
            if request is None:
                if conn.eof:
                    self._close(conn)
                return
            close = request.close
            if self._offload is not None and self._offload(request.method, request.path):
                conn.state = _BUSY
                self._unwatch(conn)
                self._submit(self._run_offloaded, conn, request, close)
                return
            tag = 0
            if self._group is not None:
                self._tag += 1
                tag = self._tag
            response = self._respond(conn, request, close, tag)
            if tag and self._group is not None and self._group.holds(tag):
                # Pipelined requests wait behind this answer. The socket stays registered:
                # the turn ends with the commit, before the next select() could report it.
                conn.state = _BUSY
                self._held.append((conn, request, response, close, tag))
                return
            self._send(conn, response, close=close)

    def _settle(self) -> None:
        """Run the turn's shared commit, then send the held answers (or their replacements)."""
        assert self._group is not None
        while self._held:  # answering resumes pipelined requests, which may hold again
            held, self._held = self._held, []
            replaced = self._group.settle()
            for conn, request, response, close, tag in held:
                if tag in replaced:
                    status, headers, payload = replaced[tag]
                    response = self._frame(request, status, headers, payload, close)
                self._resume(conn, response, close, rewatch=False)

    def _take_request(self, conn: _Conn) -> _Request | None:
        buf = conn.inbuf
        end = buf.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end = buf.find(b"\n\n")
            sep = 2
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                raise _ProtocolError(431, "Request header fields too large")
            return None
        if end > MAX_HEADER_BYTES:
            raise _ProtocolError(431, "Request header fields too large")
        method, target, version, headers, close = _parse_head(bytes(buf[:end]))
        if headers.get("Transfer-Encoding"):
            raise _ProtocolError(411, "chunked request bodies are not supported; send Content-Length")
        raw_length = headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            raise _ProtocolError(400, "invalid Content-Length")
        length = int(raw_length)
        if length > MAX_BODY:
            raise _ProtocolError(413, "request body too large")
        start = end + sep
        if len(buf) - start < length:
            if not conn.continued and (headers.get("Expect") or "").lower() == "100-continue":
                conn.continued = True
                self._write_now(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        body = bytes(buf[start : start + length])
        del buf[: start + length]
        conn.continued = False
        return _Request(method, target, version, headers, body, close)

    def _environ(self, conn: _Conn, request: _Request, after: list[Callable[[], None]]) -> dict[str, Any]:
        path, _, query = request.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            # PEP 3333: the path percent-decoded, its bytes as latin-1 (as Werkzeug's server and
            # the Functions Framework give it); the target as sent stays in REQUEST_URI/RAW_URI.
            "PATH_INFO": unquote(path, encoding="latin-1") if "%" in path else path,
            "REQUEST_URI": request.path,
            "RAW_URI": request.path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(request.body)),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "SERVER_NAME": self._server_name,
            "SERVER_PORT": self._server_port,
            "SERVER_PROTOCOL": request.version,
            "REMOTE_ADDR": conn.addr[0] if isinstance(conn.addr, tuple) else "",
            "REMOTE_PORT": str(conn.addr[1]) if isinstance(conn.addr, tuple) else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.tls else "http",
            "wsgi.input": io.BytesIO(request.body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": self._offload is not None,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            AFTER_RESPONSE_KEY: after,
        }
        for key, value in request.headers.items():
            name = "HTTP_" + key.upper().replace("-", "_")
            if name in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[name] = f"{environ[name]},{value}" if name in environ else value
        if conn.peer_pem:
            environ["SSL_CLIENT_CERT"] = conn.peer_pem
        return environ

    def _respond(self, conn: _Conn, request: _Request, close: bool, tag: int = 0) -> bytes:
        """Run the app and frame its answer; an app that raises gets a bare 500."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        after: list[Callable[[], None]] = []
        try:
            environ = self._environ(conn, request, after)
            if tag and self._group is not None:
                environ[COMMIT_GROUP_KEY] = self._group
                self._group.begin(tag, environ)
            chunks = self.app(environ, start_response)
            try:
                payload = b"".join(chunks)
            finally:
                closer = getattr(chunks, "close", None)
                if closer is not None:
                    closer()
            status, headers = started
        except Exception:
            return _error_bytes(500, "internal server error")
        finally:
            if after:  # even a failed request: work it queued (e.g. a validation it started) still runs
                conn.after = after  # the loop owns `conn`; an offloaded request hands it over via `_done`
        return self._frame(request, status, headers, payload, close)

    @staticmethod
    def _frame(request: _Request, status: str, headers: list[tuple[str, str]], payload: bytes, close: bool) -> bytes:
        code = int(status.split(" ", 1)[0])
        out = [f"HTTP/1.1 {status}\r\n"]
        for k, v in headers:
            if k.lower() not in _HOP_BY_HOP:
                out.append(f"{k}: {v}\r\n")
        if request.method != "HEAD" or payload:
            out.append(f"Content-Length: {len(payload)}\r\n")
        if close:
            out.append("Connection: close\r\n")
        out.append("\r\n")
        head = "".join(out).encode("latin-1")
        if request.method == "HEAD" or code in (204, 304):
            return head
        return head + payload

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the thread pool (started on first use)."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._offload_threads, thread_name_prefix="offload"
            )
        self._pool.submit(fn, *args)

    def _hand_back(self, conn: _Conn, response: bytes, close: bool) -> None:
        """From a pool thread: give `conn` back to the loop with `response` to send (`_finish_offloaded`)."""
        self._done.append((conn, response, close))
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _run_offloaded(self, conn: _Conn, request: _Request, close: bool) -> None:
        self._hand_back(conn, self._respond(conn, request, close), close)

    def _run_after(self, conn: _Conn | None, work: list[Callable[[], None]]) -> None:
        """Run after-answer work on the pool; then resume `conn` (None: it is closed)."""

        def run() -> None:
            for fn in work:
                try:
                    fn()
                except Exception:  # the app reports its own failures; the loop must go on
                    log.exception("after-response work failed")
            if conn is not None:
                self._hand_back(conn, b"", False)

        self._submit(run)

    def _finish_offloaded(self) -> None:
        while self._done:
            conn, response, close = self._done.popleft()
            self._resume(conn, response, close)

    def _resume(self, conn: _Conn, response: bytes, close: bool, *, rewatch: bool = True) -> None:
        """Send an answer that waited (thread pool or shared commit), then serve what is buffered."""
        if conn.state != _BUSY:
            return
        conn.state = _READING
        conn.deadline = time.monotonic() + IDLE_TIMEOUT
        if rewatch:  # offloaded connections were unregistered while their request ran
            self._watch(conn, write=False)
        self._send(conn, response, close=close)
        if conn.state == _READING:
            self._process(conn)

    # ----------------------------------------------------------------- writing

    def _send(self, conn: _Conn, data: bytes, *, close: bool) -> None:
        conn.out = data
        conn.close_after = conn.close_after or close
        conn.state = _WRITING
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        sock = conn.sock
        while conn.out:
            try:
                sent = sock.send(conn.out)
            except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                self._watch(conn, write=True)
                return
            except ssl.SSLWantReadError:
                self._watch(conn, write=False)
                return
            except (OSError, ValueError):
                self._close(conn)
                return
            conn.out = conn.out[sent:]
        if conn.close_after:
            self._close(conn)
            return
        conn.state = _READING
        conn.deadline = time.monotonic() + IDLE_TIMEOUT
        if conn.after:
            # The answer is out; its after-work runs before this connection's next request.
            work, conn.after = conn.after, None
            conn.state = _BUSY
            self._unwatch(conn)
            self._run_after(conn, work)
            return
        if conn.want_write:
            self._watch(conn, write=False)

    def _write_now(self, conn: _Conn, data: bytes) -> None:
        """A small interim write (100 Continue); a socket that cannot take it is closed."""
        try:
            conn.sock.send(data)
        except (OSError, ValueError):
            conn.close_after = True

    # ----------------------------------------------------------------- bookkeeping

    def _watch(self, conn: _Conn, *, write: bool) -> None:
        events = selectors.EVENT_WRITE if write else selectors.EVENT_READ
        conn.want_write = write
        try:
            self._sel.modify(conn.sock, events, conn)
        except KeyError:
            self._sel.register(conn.sock, events, conn)
        except (OSError, ValueError):
            self._close(conn)

    def _unwatch(self, conn: _Conn) -> None:
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def _close(self, conn: _Conn) -> None:
        if conn.state == _CLOSED:
            return
        conn.state = _CLOSED
        if conn.after:  # the request was answered (or its client left): its after-work still runs
            work, conn.after = conn.after, None
            self._run_after(None, work)
        self._unwatch(conn)
        self._conns.pop(conn.fd, None)
        try:
            conn.sock.close()
        except OSError:
            pass
