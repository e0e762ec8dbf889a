"""A small threaded HTTP/1.1 WSGI server with TLS and keep-alive.

Why not Werkzeug's `run_simple`: its development server closes every
connection after one response (and waits 10 ms draining the socket), so each
request pays a TLS handshake; at thousands of certificates per second that
dominates. `http.server` already parses HTTP/1.1 and keeps connections alive
when responses carry a Content-Length, so this module adds only the WSGI
bridge, bounded bodies, the TLS handshake in the connection's own thread, and
the client certificate (verified by the TLS layer) as `SSL_CLIENT_CERT`.
"""

from __future__ import annotations

import io
import socket
import socketserver
import ssl
import sys
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_BODY = 1024 * 1024  # hard transport cap; the app enforces its own, smaller limit
IDLE_TIMEOUT = 75.0


MAX_HEADER_LINES = 100


class _Headers:
    """Request headers: case-insensitive `get` and the raw `items()`.

    `http.server` parses headers with the `email` package, which costs more than
    the rest of a small request's HTTP handling; this is all the bridge needs.
    """

    __slots__ = ("_by_name", "_items")

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []
        self._by_name: dict[str, str] = {}

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        key = name.lower()
        self._by_name[key] = f"{self._by_name[key]}, {value}" if key in self._by_name else value

    def get(self, name: str, default: Any = None) -> Any:
        return self._by_name.get(name.lower(), default)

    def items(self) -> list[tuple[str, str]]:
        return self._items


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: WSGIServer

    def parse_request(self) -> bool:
        """Request line and headers, strictly and without the `email` parser."""
        self.command = None  # type: ignore[assignment]
        self.request_version = "HTTP/1.1"  # errors before the version is known still get a status line
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")  # type: ignore[attr-defined]
        self.requestline = requestline
        words = requestline.split()
        if len(words) != 3:
            self.send_error(400, "Bad request syntax")
            return False
        command, path, version = words
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            self.send_error(505, "HTTP version not supported")
            return False
        self.command, self.path, self.request_version = command, path, version
        headers = _Headers()
        for _ in range(MAX_HEADER_LINES + 1):
            line = self.rfile.readline(65537)
            if len(line) > 65536:
                self.send_error(431, "Header line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if not sep or not name or name != name.strip():
                self.send_error(400, "Bad header line")
                return False
            headers.add(name, value.strip())
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = (headers.get("Connection") or "").lower()
        self.close_connection = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if (headers.get("Expect") or "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        return True

    def setup(self) -> None:
        self.request.settimeout(IDLE_TIMEOUT)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self._peer_pem: str | None = None
        if isinstance(self.request, ssl.SSLSocket):
            der = self.request.getpeercert(binary_form=True)
            if der:
                self._peer_pem = ssl.DER_cert_to_PEM_cert(der)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors as step-ca JSON, and the connection closed."""
        self._error(code, (message or "bad request").replace('"', "'"))

    def _error(self, code: int, message: str) -> None:
        body = ('{"status":%d,"message":"%s"}' % (code, message)).encode()  # noqa: UP031
        self.send_response_only(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self._error(411, "chunked request bodies are not supported; send Content-Length")
            return
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            self._error(400, "invalid Content-Length")
            return
        length = int(raw_length)
        if length > MAX_BODY:
            self._error(413, "request body too large")
            return
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(length),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.server.tls else "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for key, value in self.headers.items():
            name = "HTTP_" + key.upper().replace("-", "_")
            if name in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[name] = f"{environ[name]},{value}" if name in environ else value
        if self._peer_pem:
            environ["SSL_CLIENT_CERT"] = self._peer_pem
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        chunks = self.server.app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status, headers = started
        code = int(status.split(" ", 1)[0])
        out = [f"HTTP/1.1 {status}\r\n".encode("latin-1")]
        for k, v in headers:
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                out.append(f"{k}: {v}\r\n".encode("latin-1"))
        if self.command != "HEAD" or payload:
            out.append(f"Content-Length: {len(payload)}\r\n".encode())
        if self.close_connection:
            out.append(b"Connection: close\r\n")
        out.append(b"\r\n")
        if self.command != "HEAD" and code not in (204, 304):
            out.append(payload)
        self.wfile.write(b"".join(out))

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve


class WSGIServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Thread per connection; the listening socket is handed in (shared by workers)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sock: socket.socket, app: WSGIApp, ssl_context: ssl.SSLContext | None) -> None:
        super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.app = app
        self.tls = ssl_context is not None
        self._ssl = ssl_context

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = self.socket.accept()
        if self._ssl is not None:
            conn = self._ssl.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None
