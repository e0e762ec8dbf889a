"""The worker's event loop: accept, TLS handshakes, reads, writes and deadlines on one thread.

Each connection is a small state machine (`_Conn`); the loop reads what a
socket has, takes every complete request from its buffer (`_take_request`),
answers it inline or on the thread pool, and writes the answer. Whatever goes
wrong with one connection (a parse error, an app that cannot be framed, a bug)
closes that connection only: the loop itself never stops for a client.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from shared.api.wsgi import COMMIT_GROUP_KEY
from shared.httpserver.exchange import Request, Site, WSGIApp, call_app, environ_for, frame, internal_error
from shared.httpserver.head import Head, ProtocolError, check_request_line, error_bytes, head_end, parse_head
from shared.httpserver.limits import EXHAUSTED, AcceptBackoff, ConnectionBalance, Limits

log = logging.getLogger("shared.httpserver")

Offload = Callable[[str, str], bool]
READ_CHUNK = 64 * 1024

_HANDSHAKE, _READING, _BUSY, _WRITING, _CLOSED = range(5)
_CRLF = b"\r\n"
_TIMED_OUT = error_bytes(408, "request not received in time")


class CommitGroup(Protocol):
    """Writes that requests answered in one loop turn leave for a shared commit (`shared.groupcommit`)."""

    def begin(self, tag: int, environ: dict[str, Any]) -> None:
        """The request `tag` is about to run with `environ`."""

    def holds(self, tag: int) -> bool:
        """Whether request `tag`'s answer must wait for `settle()`."""

    def settle(self) -> dict[int, tuple[str, list[tuple[str, str]], bytes]]:
        """Commit; return (status, headers, body) for held requests whose write failed. Never raises."""


class _Conn:
    """One client connection's state; only the loop thread touches it."""

    __slots__ = (
        "addr", "after", "close_after", "continued", "deadline", "eof", "fd", "head", "inbuf", "line_ok", "out",
        "peer_pem", "sock", "started", "state", "want_write",
    )

    def __init__(self, sock: socket.socket, addr: Any, tls: bool, deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.eof = False  # the client half-closed: answer what is buffered, then close
        self.addr = addr
        self.state = _HANDSHAKE if tls else _READING
        self.inbuf = bytearray()
        self.head: Head | None = None  # the parsed head of a request whose body is still arriving
        self.line_ok = False  # the request line of the head being read was checked
        self.started = 0.0  # when the request being read began to arrive
        self.out = b""
        self.close_after = False
        self.peer_pem: str | None = None
        self.continued = False  # a 100 Continue was sent for the request being read
        self.want_write = False
        self.after: list[Callable[[], None]] | None = None  # work to run once the answer being written is sent
        self.deadline = deadline

    def idle(self) -> bool:
        """Holding no request: waiting for one (keep-alive, or just accepted) or still in its handshake."""
        return self.state in (_READING, _HANDSHAKE) and not self.inbuf and self.head is None


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
        limits: Limits | None = None,
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
        self.limits = limits = limits or Limits()
        self._cap = limits.connection_cap()
        self._read_cap = limits.max_body + limits.max_header_bytes + 4  # one maximal request
        self._backoff = AcceptBackoff(limits.backoff_min, limits.backoff_max)
        self._listening = False
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        host, port = sock.getsockname()[:2]
        self.server_address = (host, port)
        self._site = Site(str(host), str(port), tls=self.tls, multithread=offload is not None)
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}
        self._done: collections.deque[tuple[_Conn, bytes, bool]] = collections.deque()
        self._group = commit_group
        self._after_turn = after_turn
        self._tag = 0
        self._held: list[tuple[_Conn, Request, bytes, bool, int]] = []
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
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        sweep_every = self.limits.sweep_interval()
        timeout = min(poll_interval, sweep_every)
        now = time.monotonic()
        next_sweep = now + sweep_every
        try:
            while not self._stop.is_set():
                count = len(self._conns)
                accept = now >= self._backoff.resume_at
                if self._balance is not None:
                    self._balance.set(count)
                    accept = accept and self._balance.should_accept(count)
                self._listen(accept)
                for key, mask in self._sel.select(timeout):
                    conn = key.data
                    try:
                        if conn is None:
                            if key.fileobj is self.socket:
                                self._accept()
                            else:
                                self._drain_wake()
                        elif mask & selectors.EVENT_WRITE and conn.want_write:
                            self._on_writable(conn)
                        else:
                            self._on_readable(conn)
                    except Exception:  # one connection's fault ends that connection, never the worker
                        log.exception("closing a connection after an unexpected error")
                        if conn is not None:
                            self._close(conn)
                if self._held:
                    self._settle()
                if self._done:
                    self._finish_offloaded()
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + sweep_every
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

    # ----------------------------------------------------------------- accepting and deadlines

    def _accept(self) -> None:
        # One connection per wake-up: worker processes share the listening socket, and a
        # worker that is busy answering should leave the next client to a free one.
        if len(self._conns) >= self._cap and not self._evict_idle():
            self._backoff.pause(time.monotonic(), self.limits.backoff_min)  # full of busy clients
            return
        try:
            raw, addr = self.socket.accept()
        except (BlockingIOError, InterruptedError):  # another worker took it
            return
        except OSError as exc:
            if exc.errno in EXHAUSTED and not self._evict_idle():
                pause = self._backoff.failed(time.monotonic())
                log.warning('{"event":"accept failed","error":"%s","pauseSeconds":%.2f}', exc.strerror, pause)
            return  # (or ECONNABORTED and friends: wait for the next client)
        self._backoff.succeeded()
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
        limits = self.limits
        now = time.monotonic()
        conn = _Conn(sock, addr, self.tls, now + (limits.handshake_timeout if self.tls else limits.idle_timeout))
        self._conns[conn.fd] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)
        if conn.state == _HANDSHAKE:
            self._handshake(conn)

    def _evict_idle(self) -> bool:
        """Close the idle connection nearest its deadline to make room; False when none is idle."""
        idle = [c for c in self._conns.values() if c.idle()]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.deadline))
        return True

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _sweep(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.state != _BUSY and now > conn.deadline:
                if conn.state == _READING and (conn.inbuf or conn.head is not None):
                    self._write_now(conn, _TIMED_OUT)  # a request that did not arrive in time
                self._close(conn)

    def _await_request(self, conn: _Conn, now: float) -> None:
        """Between requests: idle until the next one, or its head's deadline if it began to arrive."""
        if conn.inbuf:
            conn.started = now
            conn.deadline = now + self.limits.header_timeout
        else:
            conn.deadline = now + self.limits.idle_timeout

    # ----------------------------------------------------------------- events

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
        conn.deadline = time.monotonic() + self.limits.idle_timeout
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
        cap = self._read_cap  # more waits until the buffered request is answered
        while conn.state == _READING and not conn.eof:
            fresh = not conn.inbuf and conn.head is None  # a new request starts with these bytes
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
            if got and fresh:  # the head's deadline runs from its first byte; later bytes never extend it
                conn.started = time.monotonic()
                conn.deadline = conn.started + self.limits.header_timeout
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
            except ProtocolError as exc:
                conn.inbuf.clear()
                self._send(conn, error_bytes(exc.status, exc.message), close=True)
                return
            if request is None:
                if conn.eof:
                    self._close(conn)
                return
            close = request.head.close
            if self._offload is not None and self._offload(request.head.method, request.head.target):
                conn.state = _BUSY
                self._unwatch(conn)
                self._submit(self._run_offloaded, conn, request, close)
                return
            tag = 0
            if self._group is not None:
                self._tag += 1
                tag = self._tag
            response, close = self._respond(conn, request, close, tag)
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
                    try:
                        response = frame(request.head.method, status, headers, payload, close)
                    except Exception:
                        response, close = internal_error()
                self._resume(conn, response, close, rewatch=False)

    def _take_request(self, conn: _Conn) -> Request | None:
        """The next complete request in the buffer, or None until more arrives. Raises ProtocolError."""
        buf = conn.inbuf
        head = conn.head
        limits = self.limits
        if head is None:
            if buf and buf[0] in _CRLF:  # RFC 9112 s.2.2: empty lines before a request are ignored
                del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
            end, sep = head_end(buf)
            if end < 0:
                if len(buf) > limits.max_header_bytes:
                    raise ProtocolError(431, "Request header fields too large")
                if not conn.line_ok and buf:
                    check_request_line(buf)  # refuse a bad request line before the head is complete
                    conn.line_ok = b"\n" in buf
                return None
            if end > limits.max_header_bytes:
                raise ProtocolError(431, "Request header fields too large")
            head = parse_head(bytes(buf[:end]), max_lines=limits.max_header_lines, max_body=limits.max_body)
            del buf[: end + sep]
            conn.line_ok = False
            if len(buf) < head.length:  # the body is still arriving: the whole request has a deadline
                conn.head = head
                conn.deadline = conn.started + limits.request_timeout
        length = head.length
        if len(buf) < length:
            if not conn.continued and (head.headers.get("Expect") or "").lower() == "100-continue":
                conn.continued = True
                self._write_now(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        body = bytes(buf[:length])
        del buf[:length]
        conn.head = None
        conn.continued = False
        return Request(head, body)

    def _respond(self, conn: _Conn, request: Request, close: bool, tag: int = 0) -> tuple[bytes, bool]:
        """Run the app and frame its answer; whatever fails gets a bare 500 and closes the connection."""
        after: list[Callable[[], None]] = []
        try:
            environ = environ_for(self._site, request, conn.addr, conn.peer_pem, after)
            if tag and self._group is not None:
                environ[COMMIT_GROUP_KEY] = self._group
                self._group.begin(tag, environ)
            status, headers, payload = call_app(self.app, environ)
            return frame(request.head.method, status, headers, payload, close), close
        except Exception:
            return internal_error()
        finally:
            if after:  # even a failed request: work it queued (e.g. a validation it started) still runs
                conn.after = after  # the loop owns `conn`; an offloaded request hands it over via `_done`

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

    def _run_offloaded(self, conn: _Conn, request: Request, close: bool) -> None:
        self._hand_back(conn, *self._respond(conn, request, close))

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
            try:
                self._resume(conn, response, close)
            except Exception:
                log.exception("closing a connection after an unexpected error")
                self._close(conn)

    def _resume(self, conn: _Conn, response: bytes, close: bool, *, rewatch: bool = True) -> None:
        """Send an answer that waited (thread pool or shared commit), then serve what is buffered."""
        if conn.state != _BUSY:
            return
        conn.state = _READING
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
                if not conn.want_write:  # the client is slow to read: its answer has a deadline too
                    conn.deadline = time.monotonic() + self.limits.request_timeout
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
        self._await_request(conn, time.monotonic())
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
        """A small interim or final write (100 Continue, 408); a socket that cannot take it is closed."""
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
