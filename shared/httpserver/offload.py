"""Work that leaves the loop thread, and the way back: a small thread pool and a wake-up socket.

Requests that wait on the network (`offload`) and after-answer work run here
so they cannot stall other connections. A pool thread never touches a
connection: it hands the connection back with its answer (`hand_back`) and
wakes the loop, which resumes it on the loop thread.
"""

from __future__ import annotations

import collections
import concurrent.futures
import socket
from collections.abc import Callable, Iterator
from typing import Any

from shared.httpserver.connection import Connection


class Offloader:
    """The pool (started on first use), the answers handed back, and the loop's wake-up socket."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._done: collections.deque[tuple[Connection, bytes, bool]] = collections.deque()
        self.waker, self._wake_w = socket.socketpair()  # the loop selects on `waker`
        self.waker.setblocking(False)
        self._wake_w.setblocking(False)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the pool."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="offload")
        self._pool.submit(fn, *args)

    def hand_back(self, conn: Connection, response: bytes, close: bool) -> None:
        """From a pool thread: give `conn` back to the loop with `response` to send."""
        self._done.append((conn, response, close))
        self.wake()

    def wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def drain_wake(self) -> None:
        try:
            while self.waker.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def pending(self) -> bool:
        return bool(self._done)

    def handed_back(self) -> Iterator[tuple[Connection, bytes, bool]]:
        """What pool threads handed back, oldest first (on the loop thread)."""
        while self._done:
            yield self._done.popleft()

    def shutdown(self) -> None:
        """Wait for running work (its hand-backs are still collected by `handed_back`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def close(self) -> None:
        self.waker.close()
        self._wake_w.close()
