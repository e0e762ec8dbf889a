"""The worker's event loop: accept, dispatch the selector's events, keep deadlines, on one thread.

Each connection is a small state machine (`Connection`); the loop accepts it,
hands its readiness events to `shared.httpserver.transport` (handshakes, reads,
writes), which passes complete requests to `shared.httpserver.answering`
(inline, on the thread pool, or after the turn's shared commit). This module
keeps what is the worker's as a whole: the listening socket (paused when full
or when accept fails for lack of descriptors), the idle connections evicted to
make room, the deadlines swept, and the loop's start and stop. Whatever goes
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

from shared.httpserver.answering import Answering, Offload
from shared.httpserver.connection import BUSY, HANDSHAKE, READING, Connection, write_now
from shared.httpserver.exchange import CommitGroup, Site, WSGIApp
from shared.httpserver.head import error_bytes
from shared.httpserver.limits import EXHAUSTED, AcceptBackoff, ConnectionBalance, Limits
from shared.httpserver.offload import Offloader
from shared.httpserver.transport import Transport

__all__ = ["Offload", "WSGIServer"]  # `Offload` re-exported: it was defined here

log = logging.getLogger("shared.httpserver")

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
        self._balance = balance
        self.limits = limits = limits or Limits()
        self._cap = limits.connection_cap()
        self._backoff = AcceptBackoff(limits.backoff_min, limits.backoff_max)
        self._listening = False
        host, port = sock.getsockname()[:2]
        self.server_address = (host, port)
        self._sel = selectors.DefaultSelector()
        self._work = Offloader(offload_threads)
        # The two sides call each other: the transport hands what it read to answering, and
        # answering writes through the transport; `_answers` exists before any event arrives.
        self._io = Transport(
            selector=self._sel,
            limits=limits,
            process=lambda conn: self._answers.process(conn),
            run_after=lambda conn, work: self._answers.run_after(conn, work),
        )
        self._answers = Answering(
            app=app,
            site=Site(str(host), str(port), tls=self.tls, multithread=offload is not None),
            limits=limits,
            io=self._io,
            work=self._work,
            offload=offload,
            commit_group=commit_group,
        )
        self._after_turn = after_turn
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
        io, answers, conns = self._io, self._answers, self._io.conns
        try:
            while not self._stop.is_set():
                count = len(conns)
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
                            io.on_writable(conn)
                        else:
                            io.on_readable(conn)
                    except Exception:  # one connection's fault ends that connection, never the worker
                        log.exception("closing a connection after an unexpected error")
                        if conn is not None:
                            io.close(conn)
                if answers.held:
                    answers.settle()
                if self._work.pending():
                    answers.finish_offloaded()
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + sweep_every
                if self._after_turn is not None:
                    self._after_turn()
        finally:
            if answers.held:  # answers waiting on the shared commit: record them, then answer
                answers.settle()
            if self._after_turn is not None:
                self._after_turn()
            self._listen(False)
            try:
                self._sel.unregister(self._work.waker)
            except (KeyError, ValueError):
                pass
            self._work.shutdown()
            answers.finish_offloaded()
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
        for conn in list(self._io.conns.values()):
            self._io.close(conn)
        self._sel.close()
        self.socket.close()
        self._work.close()

    # ----------------------------------------------------------------- accepting and deadlines

    def _accept(self) -> None:
        # One connection per wake-up: worker processes share the listening socket, and a
        # worker that is busy answering should leave the next client to a free one.
        if len(self._io.conns) >= self._cap and not self._evict_idle():
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
        self._io.conns[conn.fd] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)
        if conn.state == HANDSHAKE:
            self._io.handshake(conn)

    def _evict_idle(self) -> bool:
        """Close the idle connection nearest its deadline to make room; False when none is idle."""
        idle = [c for c in self._io.conns.values() if c.idle()]
        if not idle:
            return False
        self._io.close(min(idle, key=lambda c: c.deadline))
        return True

    def _sweep(self, now: float) -> None:
        for conn in list(self._io.conns.values()):
            if conn.state != BUSY and now > conn.deadline:
                if conn.state == READING and (conn.inbuf or conn.head is not None):
                    write_now(conn, _TIMED_OUT)  # a request that did not arrive in time
                self._io.close(conn)
