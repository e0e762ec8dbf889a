"""One connection's bytes: TLS handshakes, reads, writes and the selector's watch on it.

The loop (`shared.httpserver.loop`) accepts connections and dispatches the
selector's events; this module moves each connection's bytes in and out and
keeps its registration in step with what it waits for (a TLS read may need a
write first, and the other way round). What a complete request means is
`shared.httpserver.answering`'s concern: a read hands the buffer over through
`process`, and a written answer's after-work goes through `run_after`. Kept
apart so the socket-level rules (read everything the socket has, so no TLS
plaintext is left unseen by epoll; a slow reader's answer has a deadline too)
sit in one place, away from accepting and from answering.
"""

from __future__ import annotations

import selectors
import ssl
import time
from collections.abc import Callable

from shared.httpserver.connection import BUSY, CLOSED, HANDSHAKE, READING, WRITING, Connection
from shared.httpserver.limits import Limits

READ_CHUNK = 64 * 1024

AfterWork = list[Callable[[], None]]


class Transport:
    """Every open connection of one worker, and the socket work on each; loop thread only."""

    def __init__(
        self,
        *,
        selector: selectors.BaseSelector,
        limits: Limits,
        process: Callable[[Connection], None],
        run_after: Callable[[Connection | None, AfterWork], None],
    ) -> None:
        """`process` answers what a connection's buffer holds; `run_after` runs a request's
        after-answer work, then resumes the connection (None: it is closed)."""
        self.conns: dict[int, Connection] = {}
        self.limits = limits
        self._sel = selector
        self._process = process
        self._run_after = run_after
        self._read_cap = limits.max_body + limits.max_header_bytes + 4  # one maximal request
        self._rbuf = bytearray(READ_CHUNK)
        self._rview = memoryview(self._rbuf)

    def await_request(self, conn: Connection, now: float) -> None:
        """Between requests: idle until the next one, or its head's deadline if it began to arrive."""
        if conn.inbuf:
            conn.started = now
            conn.deadline = now + self.limits.header_timeout
        else:
            conn.deadline = now + self.limits.idle_timeout

    # ----------------------------------------------------------------- events

    def handshake(self, conn: Connection) -> None:
        """Advance a TLS handshake; once done, the client certificate is kept and reading starts."""
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.watch(conn, write=False)
            return
        except ssl.SSLWantWriteError:
            self.watch(conn, write=True)
            return
        except (OSError, ValueError):
            self.close(conn)
            return
        der = sock.getpeercert(binary_form=True)
        conn.peer_pem = ssl.DER_cert_to_PEM_cert(der) if der else None
        conn.state = READING
        conn.deadline = time.monotonic() + self.limits.idle_timeout
        self.watch(conn, write=False)
        self.read(conn)  # data may have arrived with the last handshake flight

    def on_readable(self, conn: Connection) -> None:
        """The selector reported the connection readable."""
        if conn.state == HANDSHAKE:
            self.handshake(conn)
        elif conn.state == READING:
            self.read(conn)
        elif conn.state == WRITING:  # a TLS write that needed a read first
            self.on_writable(conn)

    def on_writable(self, conn: Connection) -> None:
        """The selector reported the connection writable (it was watched for writing)."""
        if conn.state == HANDSHAKE:
            self.handshake(conn)
        elif conn.state == READING and not conn.out:  # a TLS read that needed a write first
            self.watch(conn, write=False)
            self.read(conn)
        else:
            self.flush(conn)
            if conn.state == READING:  # pipelined requests waited behind this response
                self._process(conn)

    def read(self, conn: Connection) -> None:
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
                    self.watch(conn, write=True)
                    return
                except (OSError, ValueError):
                    self.close(conn)
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

    # ----------------------------------------------------------------- writing

    def send(self, conn: Connection, data: bytes, *, close: bool) -> None:
        """Write an answer (as much as the socket takes now; the rest when it is writable)."""
        conn.out = data
        conn.close_after = conn.close_after or close
        conn.state = WRITING
        self.flush(conn)

    def flush(self, conn: Connection) -> None:
        """Write what is pending; once all is out, close or wait for the next request."""
        sock = conn.sock
        while conn.out:
            try:
                sent = sock.send(conn.out)
            except (ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                if not conn.want_write:  # the client is slow to read: its answer has a deadline too
                    conn.deadline = time.monotonic() + self.limits.request_timeout
                self.watch(conn, write=True)
                return
            except ssl.SSLWantReadError:
                self.watch(conn, write=False)
                return
            except (OSError, ValueError):
                self.close(conn)
                return
            conn.out = conn.out[sent:]
        if conn.close_after:
            self.close(conn)
            return
        conn.state = READING
        self.await_request(conn, time.monotonic())
        if conn.after:
            # The answer is out; its after-work runs before this connection's next request.
            work, conn.after = conn.after, None
            conn.state = BUSY
            self.unwatch(conn)
            self._run_after(conn, work)
            return
        if conn.want_write:
            self.watch(conn, write=False)

    # ----------------------------------------------------------------- bookkeeping

    def watch(self, conn: Connection, *, write: bool) -> None:
        """Wait for the connection to become writable (`write`) or readable."""
        events = selectors.EVENT_WRITE if write else selectors.EVENT_READ
        conn.want_write = write
        try:
            self._sel.modify(conn.sock, events, conn)
        except KeyError:
            self._sel.register(conn.sock, events, conn)
        except (OSError, ValueError):
            self.close(conn)

    def unwatch(self, conn: Connection) -> None:
        """Stop watching the connection (its request runs elsewhere, or it is closing)."""
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass

    def close(self, conn: Connection) -> None:
        """Close the connection once; work its answered request queued still runs."""
        if conn.state == CLOSED:
            return
        conn.state = CLOSED
        if conn.after:  # the request was answered (or its client left): its after-work still runs
            work, conn.after = conn.after, None
            self._run_after(None, work)
        self.unwatch(conn)
        self.conns.pop(conn.fd, None)
        try:
            conn.sock.close()
        except OSError:
            pass
