"""Answering a connection's requests: in order, inline, on the thread pool, or after the shared commit.

The loop takes every complete request from a connection's buffer and answers it
here: most inline on the loop thread; those the server offloads (slow work such
as an ACME validation) on the thread pool, the connection left unwatched until
the answer is handed back; and, with a commit group (`shared.groupcommit`), an
issuance's answer is held until the turn's one shared commit has recorded it,
so nothing is sent before it is durable. Pipelined requests wait behind their
predecessor's answer. Whatever fails inside the app gets a bare 500 and closes
that connection only. Kept apart from the sockets (`shared.httpserver.transport`)
and from accepting (`shared.httpserver.loop`) because it is where the order of
answers and the durability rule live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from shared.api.wsgi import COMMIT_GROUP_KEY
from shared.httpserver.connection import BUSY, READING, Connection, take_request
from shared.httpserver.exchange import CommitGroup, Request, Site, WSGIApp, call_app, environ_for, frame, internal_error
from shared.httpserver.head import ProtocolError, error_bytes
from shared.httpserver.limits import Limits
from shared.httpserver.offload import Offloader

log = logging.getLogger("shared.httpserver")

Offload = Callable[[str, str], bool]


class ConnectionIO(Protocol):
    """The socket side answering writes through (`shared.httpserver.transport.Transport`)."""

    def send(self, conn: Connection, data: bytes, *, close: bool) -> None:
        """Write an answer, then close or wait for the next request."""
        ...

    def close(self, conn: Connection) -> None:
        """Close the connection."""
        ...

    def watch(self, conn: Connection, *, write: bool) -> None:
        """Watch the connection for reading (or writing)."""
        ...

    def unwatch(self, conn: Connection) -> None:
        """Stop watching the connection while its request runs elsewhere."""
        ...


class Answering:
    """The requests of every connection of one worker; loop thread, except the pool's app calls."""

    def __init__(
        self,
        *,
        app: WSGIApp,
        site: Site,
        limits: Limits,
        io: ConnectionIO,
        work: Offloader,
        offload: Offload | None = None,
        commit_group: CommitGroup | None = None,
    ) -> None:
        """`offload` says which requests (method, target) run on `work`'s thread pool;
        `commit_group` is the turn's shared commit that issuance answers wait for."""
        self._app = app
        self._site = site
        self._limits = limits
        self._io = io
        self._work = work
        self._offload = offload
        self._group = commit_group
        self._tag = 0
        # answers waiting on the turn's shared commit: (connection, request, answer, close, tag)
        self.held: list[tuple[Connection, Request, bytes, bool, int]] = []

    def process(self, conn: Connection) -> None:
        """Answer every complete request in the buffer, in order, until one must wait."""
        while conn.state == READING:
            try:
                request = take_request(conn, self._limits)
            except ProtocolError as exc:
                conn.inbuf.clear()
                self._io.send(conn, error_bytes(exc.status, exc.message), close=True)
                return
            if request is None:
                if conn.eof:
                    self._io.close(conn)
                return
            close = request.head.close
            if self._offload is not None and self._offload(request.head.method, request.head.target):
                conn.state = BUSY
                self._io.unwatch(conn)
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
                self.held.append((conn, request, response, close, tag))
                return
            self._io.send(conn, response, close=close)

    def settle(self) -> None:
        """Run the turn's shared commit, then send the held answers (or their replacements)."""
        assert self._group is not None
        while self.held:  # answering resumes pipelined requests, which may hold again
            held, self.held = self.held, []
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
            status, headers, payload = call_app(self._app, environ)
            return frame(request.head.method, status, headers, payload, close), close
        except Exception:
            return internal_error()
        finally:
            if after:  # even a failed request: work it queued (e.g. a validation it started) still runs
                conn.after = after  # the loop owns `conn`; an offloaded request hands it over via `Offloader.hand_back`

    def _run_offloaded(self, conn: Connection, request: Request, close: bool) -> None:
        self._work.hand_back(conn, *self._respond(conn, request, close))

    def run_after(self, conn: Connection | None, work: list[Callable[[], None]]) -> None:
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

    def finish_offloaded(self) -> None:
        """Send the answers the thread pool handed back."""
        for conn, response, close in self._work.handed_back():
            try:
                self._resume(conn, response, close)
            except Exception:
                log.exception("closing a connection after an unexpected error")
                self._io.close(conn)

    def _resume(self, conn: Connection, response: bytes, close: bool, *, rewatch: bool = True) -> None:
        """Send an answer that waited (thread pool or shared commit), then serve what is buffered."""
        if conn.state != BUSY:
            return
        conn.state = READING
        if rewatch:  # offloaded connections were unregistered while their request ran
            self._io.watch(conn, write=False)
        self._io.send(conn, response, close=close)
        if conn.state == READING:
            self.process(conn)
