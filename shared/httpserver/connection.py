"""One client connection: its state, and taking complete requests from what it has sent.

The loop (`shared.httpserver.loop`) owns every `Connection` and touches it from
its one thread only. `take_request` is where the limits of the head and body
apply: a request line is checked as soon as it is complete, the head is
parsed once, and the body's declared size is known (and refused if too large)
before any of the body is buffered.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from shared.httpserver.exchange import Request
from shared.httpserver.head import Head, ProtocolError, check_request_line, head_end, parse_head
from shared.httpserver.limits import Limits

HANDSHAKE, READING, BUSY, WRITING, CLOSED = range(5)
_CRLF = b"\r\n"


class Connection:
    """One client connection's state; only the loop thread touches it."""

    __slots__ = (
        "addr", "after", "close_after", "continued", "deadline", "eof", "fd", "head", "inbuf", "line_ok", "out",
        "peer_pem", "scanned", "sock", "started", "state", "want_write",
    )

    def __init__(self, sock: socket.socket, addr: Any, tls: bool, deadline: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.eof = False  # the client half-closed: answer what is buffered, then close
        self.addr = addr
        self.state = HANDSHAKE if tls else READING
        self.inbuf = bytearray()
        self.head: Head | None = None  # the parsed head of a request whose body is still arriving
        self.line_ok = False  # the request line of the head being read was checked
        self.scanned = 0  # how far the buffer was searched for the head's end (a head sent a byte at a time)
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
        return self.state in (READING, HANDSHAKE) and not self.inbuf and self.head is None


def take_request(conn: Connection, limits: Limits) -> Request | None:
    """The next complete request in the buffer, or None until more arrives. Raises ProtocolError."""
    buf = conn.inbuf
    head = conn.head
    if head is None:
        if buf and buf[0] in _CRLF:  # RFC 9112 s.2.2: empty lines before a request are ignored
            del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
            conn.scanned = 0
        end, sep = head_end(buf, conn.scanned)
        if end < 0:
            conn.scanned = max(0, len(buf) - 3)  # the next search starts where this one left off
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
        conn.scanned = 0
        if len(buf) < head.length:  # the body is still arriving: the whole request has a deadline
            conn.head = head
            conn.deadline = conn.started + limits.request_timeout
    length = head.length
    if len(buf) < length:
        if not conn.continued and (head.headers.get("Expect") or "").lower() == "100-continue":
            conn.continued = True
            write_now(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
        return None
    body = bytes(buf[:length])
    del buf[:length]
    conn.head = None
    conn.continued = False
    return Request(head, body)


def write_now(conn: Connection, data: bytes) -> None:
    """A small interim or final write (100 Continue, 408); a socket that cannot take it is closed."""
    try:
        conn.sock.send(data)
    except (OSError, ValueError):
        conn.close_after = True
