"""The request head: request line and header fields, parsed strictly (RFC 9112).

Strict because a lenient front is how requests get smuggled past it: a
`Content-Length` that one reader takes as 5 and another as invalid, a header
name with a NUL or CR in it, a folded line, or `Content-Length` beside
`Transfer-Encoding` can each make two parsers see two different requests.
Everything here is refused with a 4xx before the app sees it, and the
connection is closed. Numbers are read from ASCII digits only and bounded in
length (`"²".isdigit()` is true, and `int()` of thousands of digits raises).

Hand-written rather than `http.client.parse_headers`/`email`: those are
lenient by design (they accept folding, bytes outside the token set in names,
repeated fields). The loop parses each head once, on bytes, and checks whole
runs of bytes at C speed (`bytes.translate` deleting the allowed ones leaves
the forbidden ones) rather than matching a pattern per line.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

# RFC 9110 s.5.6.2: token characters (method, field names).
_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# What a field line may hold besides its terminator: HTAB, SP, VCHAR, obs-text; never NUL, CR, LF or another CTL.
_FIELD_BYTES = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_BLOCK_BYTES = _FIELD_BYTES + b"\n"
_TARGET_BYTES = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))  # visible, no space or CTL
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]{0,5})?")
_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}


def _only(data: bytes, allowed: bytes) -> bool:
    """Whether every byte of `data` is in `allowed` (one C pass: `translate` deletes the allowed ones)."""
    return not data.translate(None, allowed)


MAX_REQUEST_LINE = 8 * 1024


class ProtocolError(Exception):
    """A request the server refuses before the app sees it (status, message); the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Headers:
    """Request headers: case-insensitive `get`, the raw `items()`, and which names came twice."""

    __slots__ = ("_by_name", "_items", "repeated")

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._by_name: dict[str, str] = {}
        self.repeated: set[str] | None = None

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        key = name.lower()
        if key in self._by_name:
            self._by_name[key] = f"{self._by_name[key]}, {value}"
            if self.repeated is None:
                self.repeated = set()
            self.repeated.add(key)
        else:
            self._by_name[key] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self._by_name.get(name.lower(), default)

    def replace(self, name: str, value: str) -> None:
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]
        self._by_name.pop(key, None)
        self.add(name, value)

    def items(self) -> list[tuple[str, str]]:
        return self._items


class Head:
    """One parsed request head; `length` is the body's declared size (0 when none)."""

    __slots__ = ("close", "headers", "length", "method", "target", "version")

    def __init__(self, method: str, target: str, version: str, headers: Headers, close: bool, length: int) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.close = close
        self.length = length


def head_end(buf: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Where the head ends and its terminator's length (the index is the terminator's first byte);
    (-1, 0) when not yet. CRLF heads take one search; a bare-LF empty line earlier than the first
    CRLF one leaves an empty line inside the head, which `parse_head` refuses."""
    end = buf.find(b"\r\n\r\n", start)
    if end >= 0:
        return end + 1, 3  # the head keeps its last line's CR, as for the other terminators
    lf = buf.find(b"\n\n", start)
    crlf = buf.find(b"\n\r\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 3
    if lf >= 0:
        return lf, 2
    return -1, 0


def check_request_line(buf: bytes | bytearray) -> None:
    """Refuse a bad request line as soon as it is complete, before the rest of the head arrives.

    An HTTP/0.9 line (`GET /`, no version) would otherwise wait for an empty line
    that such a client never sends.
    """
    nl = buf.find(b"\n")
    if nl < 0:
        if len(buf) > MAX_REQUEST_LINE:
            raise ProtocolError(414, "request line too long")
        return
    parse_request_line(bytes(buf[:nl]))


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """`method SP target SP version`, single spaces; 505 only for a well-formed other version."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_REQUEST_LINE:
        raise ProtocolError(414, "request line too long")
    words = line.split(b" ")
    if len(words) != 3:
        raise ProtocolError(400, "Bad request syntax")
    method, target, version = words
    if not method or not target or not _only(method, _TCHAR) or not _only(target, _TARGET_BYTES):
        raise ProtocolError(400, "Bad request syntax")
    known = _VERSIONS.get(version)
    if known is None:
        if _VERSION.fullmatch(version) is None:
            raise ProtocolError(400, "Bad request syntax")
        raise ProtocolError(505, "HTTP version not supported")
    return method.decode("ascii"), target.decode("latin-1"), known


def _absolute_target(target: str) -> tuple[str, str]:
    """absolute-form (RFC 9112 s.3.2.2, which a server must accept): (origin-form target, authority)."""
    try:
        parts = urlsplit(target)
    except ValueError as exc:  # e.g. `http://[/`: an unclosed IPv6 literal
        raise ProtocolError(400, "Bad request target") from exc
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProtocolError(400, "Bad request target")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path, parts.netloc.rpartition("@")[2]


def body_length(headers: Headers, max_body: int) -> int:
    """The body size from `Content-Length` (RFC 9112 s.6.3), refusing what could be read two ways."""
    te = headers.get("Transfer-Encoding")
    raw = headers.get("Content-Length")
    if te is not None:
        if raw is not None:
            raise ProtocolError(400, "Content-Length with Transfer-Encoding")
        raise ProtocolError(411, "chunked request bodies are not supported; send Content-Length")
    if raw is None:
        return 0
    if headers.repeated is not None and "content-length" in headers.repeated:
        raise ProtocolError(400, "more than one Content-Length")
    if not (raw.isascii() and raw.isdigit()):  # `isdigit` alone takes "²"
        raise ProtocolError(400, "invalid Content-Length")
    digits = raw.lstrip("0")
    if len(digits) > len(str(max_body)) or int(digits or "0") > max_body:
        raise ProtocolError(413, f"request body larger than {max_body} bytes")
    return int(digits or "0")


def parse_head(head: bytes, *, max_lines: int, max_body: int) -> Head:
    """Request line and header fields (`head` without its empty line), strictly."""
    lines = head.split(b"\n")
    if len(lines) - 1 > max_lines:
        raise ProtocolError(431, "Too many headers")
    method, target, version = parse_request_line(lines[0])
    authority = None
    if not target.startswith("/") and target != "*":
        target, authority = _absolute_target(target)
    headers = Headers()
    fields = lines[1:]
    if fields:
        block = b"\n".join(fields)  # each line but a bare-LF one still ends in its CR
        if block.endswith(b"\r"):
            block = block[:-1]
        # No CTL but HTAB anywhere, and a CR only just before a LF (no bare CR).
        if not _only(block.replace(b"\r\n", b"\n"), _BLOCK_BYTES):
            raise ProtocolError(400, "Bad header line")
        names = []
        for raw in fields:
            name, sep, value = (raw[:-1] if raw.endswith(b"\r") else raw).partition(b":")
            if not sep or not name:
                raise ProtocolError(400, "Bad header line")
            names.append(name)
            headers.add(name.decode("latin-1"), value.strip(b" \t").decode("latin-1"))
        # Every name a token (checked in one pass): no whitespace before the colon, none leading (obs-fold).
        if b"".join(names).translate(None, _TCHAR):
            raise ProtocolError(400, "Bad header line")
    if headers.repeated is not None and "host" in headers.repeated:
        raise ProtocolError(400, "more than one Host")
    if authority is not None:
        headers.replace("Host", authority)
    host = headers.get("Host")
    if host is not None and _HOST.fullmatch(host) is None:
        raise ProtocolError(400, "invalid Host")
    length = body_length(headers, max_body)
    connection = (headers.get("Connection") or "").lower()
    close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
    return Head(method, target, version, headers, close, length)


REASONS = {
    400: "Bad Request", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
    414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


def error_bytes(status: int, message: str) -> bytes:
    """A whole closing answer in step-ca's error JSON shape."""
    body = json.dumps({"status": status, "message": message}, separators=(",", ":")).encode()
    return (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("latin-1") + body
