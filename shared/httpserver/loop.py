"""The worker's event loop: accept, TLS handshakes, reads, writes and deadlines on one thread.

Each connection is a small state machine (`Connection`); the loop reads what a
socket has, takes every complete request from its buffer (`connection.take_request`),
answers it inline or on the thread pool, and writes the answer. Whatever goes
wrong with one connection (a parse error, an app that cannot be framed, a bug)
closes that connection only: the loop itself never stops for a client.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable

from shared.api.wsgi import COMMIT_GROUP_KEY
from shared.httpserver.connection import BUSY, CLOSED, HANDSHAKE, READING, WRITING, Connection, take_request, write_now
from shared.httpserver.exchange import CommitGroup, Request, Site, WSGIApp, call_app, environ_for, frame, internal_error
from shared.httpserver.head import ProtocolError, error_bytes
from shared.httpserver.limits import EXHAUSTED, AcceptBackoff, ConnectionBalance, Limits
from shared.httpserver.offload import Offloader

log = logging.getLogger("shared.httpserver")

Offload = Callable[[str, str], bool]
READ_CHUNK = 64 * 1024

_TIMED_OUT = error_bytes(408, "request not received in time")


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
        host, port = sock.getsockname()[:2]
        self.server_address = (host, port)
        self._site = Site(str(host), str(port), tls=self.tls, multithread=offload is not None)
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, Connection] = {}
        self._work = Offloader(offload_threads)
        self._group = commit_group
        self._after_turn = after_turn
        self._tag = 0
        self._held: list[tuple[Connection, Request, bytes, bool, int]] = []
        self._rbuf = bytearray(READ_CHUNK)
        self._rview = memoryview(self._rbuf)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    # ----------------------------------------------------------------- lifecycle

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the loop until `shutdown()` (from another thread or a signal handler's thread)."""
        self._stopped.clear()
        self.socket.setblocking(False)
        self._sel.register(self._work.waker, selectors.EVENT_READ, None)
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
                                self._work.drain_wake()
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
                if self._work.pending():
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
                self._sel.unregister(self._work.waker)
            except (KeyError, ValueError):
                pass
            self._work.shutdown()
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
        self._work.wake()
        self._stopped.wait()

    def server_close(self) -> None:
        """Close every connection and the listening socket."""
        for conn in list(self._conns.values()):
            self._close(conn)
        self._sel.close()
        self.socket.close()
        self._work.close()

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
        conn = Connection(sock, addr, self.tls, now + (limits.handshake_timeout if self.tls else limits.idle_timeout))
        self._conns[conn.fd] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)
        if conn.state == HANDSHAKE:
            self._handshake(conn)

    def _evict_idle(self) -> bool:
        """Close the idle connection nearest its deadline to make room; False when none is idle."""
        idle = [c for c in self._conns.values() if c.idle()]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.deadline))
        return True

    def _sweep(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.state != BUSY and now > conn.deadline:
                if conn.state == READING and (conn.inbuf or conn.head is not None):
                    write_now(conn, _TIMED_OUT)  # a request that did not arrive in time
                self._close(conn)

    def _await_request(self, conn: Connection, now: float) -> None:
        """Between requests: idle until the next one, or its head's deadline if it began to arrive."""
        if conn.inbuf:
            conn.started = now
            conn.deadline = now + self.limits.header_timeout
        else:
            conn.deadline = now + self.limits.idle_timeout

    # ----------------------------------------------------------------- events

    def _handshake(self, conn: Connection) -> None:
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
        conn.state = READING
        conn.deadline = time.monotonic() + self.limits.idle_timeout
        self._watch(conn, write=False)
        self._read(conn)  # data may have arrived with the last handshake flight

    def _on_readable(self, conn: Connection) -> None:
        if conn.state == HANDSHAKE:
            self._handshake(conn)
        elif conn.state == READING:
            self._read(conn)
        elif conn.state == WRITING:  # a TLS write that needed a read first
            self._on_writable(conn)

    def _on_writable(self, conn: Connection) -> None:
        if conn.state == HANDSHAKE:
            self._handshake(conn)
        elif conn.state == READING and not conn.out:  # a TLS read that needed a write first
            self._watch(conn, write=False)
            self._read(conn)
        else:
            self._flush(conn)
            if conn.state == READING:  # pipelined requests waited behind this response
                self._process(conn)

    def _read(self, conn: Connection) -> None:
        """Read everything the socket has (so no TLS plaintext is left unseen by epoll), then answer."""
        sock = conn.sock
        cap = self._read_cap  # more waits until the buffered request is answered
        while conn.state == READING and not conn.eof:
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
        if conn.state == READING and conn.eof:
            self._process(conn)

    # ----------------------------------------------------------------- requests

    def _process(self, conn: Connection) -> None:
        """Answer every complete request in the buffer, in order, until one must wait."""
        while conn.state == READING:
            try:
                request = take_request(conn, self.limits)
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
                conn.state = BUSY
                self._unwatch(conn)
                self._work.submit(self._run_offloaded, conn, request, close)
                return
            tag = 0
            if self._group is not None:
                self._tag += 1
                tag = self._tag
            response, close = self._respond(conn, request, close, tag)
            if tag and self._group is not None and self._group.holds(tag):
                # Pipelined requests wait behind this answer. The socket stays registered:
                # the turn ends with the commit, before the next select() could report it.
                conn.state = BUSY
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

    def _respond(self, conn: Connection, request: Request, close: bool, tag: int = 0) -> tuple[bytes, bool]:
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
                conn.after = after  # the loop owns `conn`; an offloaded request hands it over via `Offloader.hand_back`

    def _run_offloaded(self, conn: Connection, request: Request, close: bool) -> None:
        self._work.hand_back(conn, *self._respond(conn, request, close))

    def _run_after(self, conn: Connection | None, work: list[Callable[[], None]]) -> None:
        """Run after-answer work on the pool; then resume `conn` (None: it is closed)."""

        def run() -> None:
            for fn in work:
                try:
                    fn()
                except Exception:  # the app reports its own failures; the loop must go on
                    log.exception("after-response work failed")
            if conn is not None:
                self._work.hand_back(conn, b"", False)

        self._work.submit(run)

    def _finish_offloaded(self) -> None:
        for conn, response, close in self._work.handed_back():
            try:
                self._resume(conn, response, close)
            except Exception:
                log.exception("closing a connection after an unexpected error")
                self._close(conn)

    def _resume(self, conn: Connection, response: bytes, close: bool, *, rewatch: bool = True) -> None:
        """Send an answer that waited (thread pool or shared commit), then serve what is buffered."""
        if conn.state != BUSY:
            return
        conn.state = READING
        if rewatch:  # offloaded connections were unregistered while their request ran
            self._watch(conn, write=False)
        self._send(conn, response, close=close)
        if conn.state == READING:
            self._process(conn)

    # ----------------------------------------------------------------- writing

    def _send(self, conn: Connection, data: bytes, *, close: bool) -> None:
        conn.out = data
        conn.close_after = conn.close_after or close
        conn.state = WRITING
        self._flush(conn)

    def _flush(self, conn: Connection) -> None:
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
        conn.state = READING
        self._await_request(conn, time.monotonic())
        if conn.after:
            # The answer is out; its after-work runs before this connection's next request.
            work, conn.after = conn.after, None
            conn.state = BUSY
            self._unwatch(conn)
            self._run_after(conn, work)
            return
        if conn.want_write:
            self._watch(conn, write=False)

    # ----------------------------------------------------------------- bookkeeping

    def _watch(self, conn: Connection, *, write: bool) -> None:
        events = selectors.EVENT_WRITE if write else selectors.EVENT_READ
        conn.want_write = write
        try:
            self._sel.modify(conn.sock, events, conn)
        except KeyError:
            self._sel.register(conn.sock, events, conn)
        except (OSError, ValueError):
            self._close(conn)

    def _unwatch(self, conn: Connection) -> None:
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def _close(self, conn: Connection) -> None:
        if conn.state == CLOSED:
            return
        conn.state = CLOSED
        if conn.after:  # the request was answered (or its client left): its after-work still runs
            work, conn.after = conn.after, None
            self._run_after(None, work)
        self._unwatch(conn)
        self._conns.pop(conn.fd, None)
        try:
            conn.sock.close()
        except OSError:
            pass
