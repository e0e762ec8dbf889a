"""A deadline for a whole HTTP exchange: when it passes, the connection's socket is shut down.

A socket timeout bounds each read, not the exchange: a server that sends one byte a little more
often than the timeout (during the TLS handshake, the headers or the body) would hold the caller
for as long as it likes. Python's `http.client` and `ssl` offer no whole-call deadline, so a
timer thread shuts the socket down when the deadline passes; the blocked read then returns end
of file (or fails), and the caller, seeing `expired`, reports a timeout. Resolving the host name
happens before there is a socket and is bounded separately (`shared.webhooks.resolve`).

The socket is reached through its file descriptor, wrapped for the `shutdown` call only and
detached again: the `ssl.SSLSocket` object may be in the middle of a read on the caller's
thread, and its own `shutdown` would drop its TLS state under that read. The descriptor cannot
be closed and reused meanwhile: the watchdog holds a lock while it cuts, and `__exit__` takes
the same lock before the caller may close the connection.
"""

from __future__ import annotations

import http.client
import socket
import threading
from types import TracebackType


class Watchdog:
    """Shuts `conn`'s socket down `seconds` from entering, unless the block has ended by then."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self._conn = conn
        self._timer = threading.Timer(max(seconds, 0.0), self._cut)
        self._timer.daemon = True
        self._lock = threading.Lock()
        self._finished = False
        self.expired = False

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self._timer.cancel()
        with self._lock:  # a cut in progress ends before the caller may close the socket
            self._finished = True

    def _cut(self) -> None:
        with self._lock:
            if self._finished:
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
