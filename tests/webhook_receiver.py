"""A real step-ca-style webhook server on loopback for tests: verifies the HMAC, answers per path.

It checks what a webhook server written for step-ca checks: `X-Smallstep-Signature` is the hex
HMAC-SHA256 of the exact body keyed with the base64-decoded secret, and `X-Smallstep-Webhook-ID`
is present. A request failing either is answered 401 (which the CA must turn into a refusal).

Given a server `tls` context it serves https; a context with `CERT_REQUIRED` refuses a handshake
without a client certificate chaining to its verify locations (the refusals are in `refused`, the
certificate a request came with in `Seen.peer`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_B64 = base64.b64encode(b"0123456789abcdef-webhook-test-secret").decode()


@dataclass
class Seen:
    """One request the receiver took."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    peer: bytes | None = None  # the TLS client certificate (DER), when one was presented

    def json(self) -> Any:
        return json.loads(self.body)


# A route answers (status, body bytes) and may sleep first.
Route = Callable[[Seen], tuple[int, bytes]]


@dataclass
class Receiver:
    """The running server: its base URL, routes by path prefix, and what it saw."""

    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # TLS handshakes that failed, with the reason
    secret: bytes = base64.b64decode(SECRET_B64)


def answer(allow: bool, data: Any = None, error: Any = None, status: int = 200) -> Route:
    body: dict[str, Any] = {"allow": allow, "data": data}
    if error is not None:
        body["error"] = error
    raw = json.dumps(body).encode()
    return lambda _seen: (status, raw)


def raw(status: int, body: bytes, delay: float = 0.0) -> Route:
    def route(_seen: Seen) -> tuple[int, bytes]:
        if delay:
            time.sleep(delay)
        return status, body
    return route


@contextmanager
def webhook_receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    receiver = Receiver(base="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def setup(self) -> None:
            if isinstance(self.request, ssl.SSLSocket):  # the handshake in this connection's thread
                self.request.settimeout(5)
                try:
                    self.request.do_handshake()
                except (OSError, ValueError) as exc:
                    receiver.refused.append(str(exc))
                    raise
            super().setup()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            expected = hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
            sig_ok = hmac.compare_digest(expected, self.headers.get("X-Smallstep-Signature", "")) and bool(
                self.headers.get("X-Smallstep-Webhook-ID"))
            peer = self.connection.getpeercert(binary_form=True) if isinstance(self.connection, ssl.SSLSocket) else None
            seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body, sig_ok, peer)
            receiver.seen.append(seen)
            route = next((r for p, r in receiver.routes.items() if self.path.startswith(p)), None)
            if not sig_ok:
                status, out = 401, b'{"error": "bad signature"}'
            elif route is None:
                status, out = 404, b"{}"
            else:
                status, out = route(seen)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            except OSError:  # the CA gave up (timeout): nothing to tell it
                pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[Any, Any]:
            sock, address = super().get_request()
            if tls is not None:  # handshake later, in the handler's thread: a slow client blocks no one
                sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            return sock, address

        def handle_error(self, request: Any, client_address: Any) -> None:
            return  # a refused handshake is what some tests are about; it is in `refused`

    server = Server(("127.0.0.1", 0), Handler)
    receiver.base = f"{'https' if tls is not None else 'http'}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def hook(name: str, url: str, kind: str, **extra: Any) -> dict[str, Any]:
    """An `options.webhooks` entry in step-ca's shape."""
    return {"name": name, "url": url, "kind": kind, "secret": SECRET_B64, **extra}
