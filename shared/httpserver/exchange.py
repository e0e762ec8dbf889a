"""One request through the WSGI app: the environ (PEP 3333), the app call, the framed answer.

Nothing here raises into the loop: an app that raises, never calls
`start_response`, or hands back a status or header that cannot go on the wire
gets a bare 500 for that one request, and the connection closes after it.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import unquote

from shared.api.wsgi import AFTER_RESPONSE_KEY
from shared.httpserver.head import Head, error_bytes

log = logging.getLogger("shared.httpserver")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_HOP_BY_HOP = frozenset(("content-length", "connection", "transfer-encoding"))
_SKIPPED = frozenset(("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"))


class CommitGroup(Protocol):
    """Writes that requests answered in one loop turn leave for a shared commit (`shared.groupcommit`)."""

    def begin(self, tag: int, environ: dict[str, Any]) -> None:
        """The request `tag` is about to run with `environ`."""

    def holds(self, tag: int) -> bool:
        """Whether request `tag`'s answer must wait for `settle()`."""

    def settle(self) -> dict[int, tuple[str, list[tuple[str, str]], bytes]]:
        """Commit; return (status, headers, body) for held requests whose write failed. Never raises."""


class Request:
    """A complete request: its head and its body."""

    __slots__ = ("body", "head")

    def __init__(self, head: Head, body: bytes) -> None:
        self.head = head
        self.body = body


class Site:
    """What every environ of one server shares."""

    __slots__ = ("multithread", "name", "port", "scheme")

    def __init__(self, name: str, port: str, *, tls: bool, multithread: bool) -> None:
        self.name = name
        self.port = port
        self.scheme = "https" if tls else "http"
        self.multithread = multithread


def environ_for(
    site: Site, request: Request, addr: Any, peer_pem: str | None, after: list[Callable[[], None]]
) -> dict[str, Any]:
    head = request.head
    path, _, query = head.target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": head.method,
        "SCRIPT_NAME": "",
        # PEP 3333: the path percent-decoded, its bytes as latin-1 (as Werkzeug's server and
        # the Functions Framework give it); the target as sent stays in REQUEST_URI/RAW_URI.
        "PATH_INFO": unquote(path, encoding="latin-1") if "%" in path else path,
        "REQUEST_URI": head.target,
        "RAW_URI": head.target,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(request.body)),
        "CONTENT_TYPE": head.headers.get("Content-Type", ""),
        "SERVER_NAME": site.name,
        "SERVER_PORT": site.port,
        "SERVER_PROTOCOL": head.version,
        "REMOTE_ADDR": addr[0] if isinstance(addr, tuple) else "",
        "REMOTE_PORT": str(addr[1]) if isinstance(addr, tuple) else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": site.scheme,
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": site.multithread,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        AFTER_RESPONSE_KEY: after,
    }
    for key, value in head.headers.items():
        name = "HTTP_" + key.upper().replace("-", "_")
        if name in _SKIPPED:
            continue
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    if peer_pem:
        environ["SSL_CLIENT_CERT"] = peer_pem
    return environ


def call_app(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the app; raises whatever it raises (or ValueError when it never started a response)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        payload = b"".join(chunks)
    finally:
        closer = getattr(chunks, "close", None)
        if closer is not None:
            closer()
    if not started:
        raise ValueError("the app returned without start_response")
    return started[0], started[1], payload


def frame(method: str, status: str, headers: list[tuple[str, str]], payload: bytes, close: bool) -> bytes:
    """The answer on the wire. Raises ValueError for a status or header that cannot be sent as is."""
    code = int(status[:3])
    if not 100 <= code <= 599 or "\r" in status or "\n" in status:
        raise ValueError("bad status line")
    out = [f"HTTP/1.1 {status}\r\n"]
    for k, v in headers:
        if "\n" in v or "\r" in v or "\n" in k or "\r" in k:
            raise ValueError("line break in a response header")  # response splitting
        if k.lower() not in _HOP_BY_HOP:
            out.append(f"{k}: {v}\r\n")
    if method != "HEAD" or payload:
        out.append(f"Content-Length: {len(payload)}\r\n")
    if close:
        out.append("Connection: close\r\n")
    out.append("\r\n")
    head = "".join(out).encode("latin-1")
    if method == "HEAD" or code in (204, 304):
        return head
    return head + payload


def internal_error() -> tuple[bytes, bool]:
    """The answer for a request the app could not answer: a bare 500 that closes the connection."""
    log.exception("the app could not answer a request")
    return error_bytes(500, "internal server error"), True
