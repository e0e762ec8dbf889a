"""A deadline for a whole HTTP exchange: when it passes, the connection's socket is shut down.

A socket timeout bounds each read, not the exchange: a server that sends one byte a little more
often than the timeout (during the TLS handshake, the headers or the body) would hold the caller
for as long as it likes. Python's `http.client` and `ssl` offer no whole-call deadline, so a
timer shuts the socket down when the deadline passes; the blocked read then returns end of file
(or fails), and the caller, seeing `expired`, reports a timeout. Resolving the host name happens
before there is a socket and is bounded separately (`shared.webhooks.resolve`).

One daemon thread per process keeps every pending deadline in a heap, rather than a
`threading.Timer` per call: starting a thread cost about 300 us of CPU per call, 1.7 times a
whole loopback POST (bench/webhook_call.py); registering a deadline costs a lock and a heap push.
The thread starts on first use and again in a forked child (`cirrus up` forks its workers).

The socket is reached through its file descriptor, wrapped for the `shutdown` call only and
detached again: the `ssl.SSLSocket` object may be in the middle of a read on the caller's
thread, and its own `shutdown` would drop its TLS state under that read. The descriptor cannot
be closed and reused meanwhile: a watchdog holds its lock while it cuts, and `__exit__` takes
the same lock before the caller may close the connection.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import os
import socket
import threading
import time
from types import TracebackType


class Watchdog:
    """Shuts `conn`'s socket down `seconds` from entering, unless the block has ended by then."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self._conn: http.client.HTTPConnection | None = conn
        self._seconds = max(seconds, 0.0)
        self._lock = threading.Lock()
        self._finished = False
        self.expired = False

    def __enter__(self) -> Watchdog:
        _reaper.watch(time.monotonic() + self._seconds, self)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        with self._lock:  # a cut in progress ends before the caller may close the socket
            self._finished = True
            self._conn = None  # what stays in the heap until the deadline is this small object

    def cut(self) -> None:
        """The deadline passed: shut the socket down (if the block is still running)."""
        with self._lock:
            if self._finished or self._conn is None:
                return
            self.expired = True
            sock = self._conn.sock
            fd = sock.fileno() if sock is not None else -1
            if fd < 0:  # not connected yet: connecting is bounded by its own timeout
                return
            try:
                view = socket.socket(fileno=fd)
            except OSError:
                return
            try:
                view.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            finally:
                view.detach()  # the descriptor stays the connection's, closed by its owner


class _Reaper:
    """The process's one watchdog thread: cuts each registered watchdog at its deadline.

    A finished watchdog stays in the heap until its deadline (its `cut` then does nothing): the
    heap holds at most the calls of the last `timeout` seconds (30 s at most for a step-ca
    webhook), each a small object without its connection.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Watchdog]] = []
        self._order = itertools.count()  # ties on the deadline never compare watchdogs
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, watchdog: Watchdog) -> None:
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), watchdog))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="webhook-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watchdog:  # sooner than what the thread waits for
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                due = heapq.heappop(self._heap)[2]
            due.cut()  # outside the heap's lock: new calls register meanwhile

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread is not there; start afresh on first use."""
        self._cond = threading.Condition(threading.Lock())
        self._heap = []
        self._thread = None


_reaper = _Reaper()
os.register_at_fork(after_in_child=_reaper._after_fork)
