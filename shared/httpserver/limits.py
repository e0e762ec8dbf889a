"""What one worker's loop allows a client: sizes, deadlines, connections, and back-off on accept().

Deadlines are fixed when a phase starts and never pushed back by the bytes a
client sends, so a client that drips one byte a second cannot hold a
connection (slowloris): the TLS handshake, the head (`header_timeout` from the
request's first byte), and the whole request (`request_timeout` from the same
first byte, body included) each have their own. Between requests a
keep-alive connection may sit idle for `idle_timeout`.

Connections are capped per worker below the descriptor limit. At the cap, or
when accept() fails for want of descriptors (EMFILE/ENFILE), the loop closes
the idle keep-alive connection nearest its deadline to make room; when none
is idle it stops accepting for a growing pause instead of retrying accept()
at full CPU, and the kernel's backlog (or a less loaded sibling) holds the
new clients meanwhile.
"""

from __future__ import annotations

import errno
import mmap
import resource
from dataclasses import dataclass

# Descriptors a worker keeps for itself (store, logs, TLS files, pool threads' sockets).
RESERVED_DESCRIPTORS = 64
DEFAULT_MAX_CONNECTIONS = 4096
# accept() errors that mean "out of descriptors or memory": pause instead of retrying at once.
EXHAUSTED = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


def default_max_connections() -> int:
    """The per-worker cap: below the soft descriptor limit, at most `DEFAULT_MAX_CONNECTIONS`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX_CONNECTIONS
    return max(8, min(DEFAULT_MAX_CONNECTIONS, soft - RESERVED_DESCRIPTORS))


@dataclass(frozen=True, slots=True)
class Limits:
    """One worker's limits; tests pass small deadlines."""

    max_body: int = 1024 * 1024  # `cirrus up` passes the app's own limit (settings.max_body_bytes)
    max_header_bytes: int = 64 * 1024
    max_header_lines: int = 100
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    request_timeout: float = 30.0
    idle_timeout: float = 75.0
    max_connections: int = 0  # 0: `default_max_connections()`
    backoff_min: float = 0.05
    backoff_max: float = 1.0

    def connection_cap(self) -> int:
        return self.max_connections or default_max_connections()

    def sweep_interval(self) -> float:
        """How often deadlines are checked: often enough that none overruns by more than a quarter."""
        shortest = min(self.handshake_timeout, self.header_timeout, self.request_timeout, self.idle_timeout)
        return max(0.01, min(1.0, shortest / 4))


class AcceptBackoff:
    """A pause for the listening socket that doubles while accept() keeps failing, reset by a success."""

    __slots__ = ("_high", "_low", "_next", "resume_at")

    def __init__(self, low: float, high: float) -> None:
        self._low = low
        self._high = high
        self._next = low
        self.resume_at = 0.0

    def failed(self, now: float) -> float:
        """Pause from `now`; returns the pause's length."""
        pause = self._next
        self.resume_at = now + pause
        self._next = min(self._high, pause * 2)
        return pause

    def pause(self, now: float, seconds: float) -> None:
        self.resume_at = max(self.resume_at, now + seconds)

    def succeeded(self) -> None:
        self._next = self._low


class ConnectionBalance:
    """Open-connection counts of sibling worker processes, in memory shared across fork.

    Workers share one listening socket; left alone, whichever wakes first takes
    a new connection, and a handful of long-lived keep-alive clients can all land
    on one worker while another core idles. A worker stops listening while it
    holds more connections than the least-loaded sibling, so new clients go to
    the emptiest worker. Each worker writes only its own slot; a stale read only
    delays the rebalancing by one loop turn. A slot whose worker is gone is
    marked `VACANT` by the master so the others do not wait for it.
    """

    VACANT = 2**62

    def __init__(self, workers: int) -> None:
        self._mem = mmap.mmap(-1, 8 * max(1, workers))
        self._counts = memoryview(self._mem).cast("q")
        self.index = 0

    def set(self, count: int) -> None:
        """Publish this worker's connection count."""
        self._counts[self.index] = count

    def vacate(self, index: int) -> None:
        """Mark worker `index` as gone (until its replacement publishes a count)."""
        self._counts[index] = self.VACANT

    def should_accept(self, count: int) -> bool:
        """True when this worker is among the least loaded."""
        return count <= min(self._counts)
