"""The events webhook sink and the linked clients resolve host names inside their timeouts.

They post through `shared.webhooks.bounded_post`, which resolves with
`shared.webhooks.resolve.resolve_within`. As in test_webhook_resolution, the resolver is the
injected boundary (the system resolver cannot be made slow on loopback); the HTTP side is real:
a loopback server, and TLS checked against the URL's host name, not the address it resolved to.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from shared.errors import BackendError
from shared.events.base import CERTIFICATE_ISSUED, authority_event
from shared.events.webhook import WebhookSink
from shared.linked.client import post_report
from shared.linked.revoke import post_revoke
from shared.model import Event
from tests.unit.webhooks.test_webhook_client import _pki

Resolver = Callable[[str, int], list[tuple[int, tuple[Any, ...]]]]


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every POST 200 with the Host header it was sent, as the linked report's result."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"results": [{"host": self.headers["Host"]}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


@contextmanager
def hanging() -> Iterator[tuple[Resolver, list[str]]]:
    """A resolver that answers only after 30 s (released at the end), and the names it was asked."""
    release = threading.Event()
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        asked.append(host)
        release.wait(30)
        return [(socket.AF_INET, ("127.0.0.1", port))]

    try:
        yield resolve, asked
    finally:
        release.set()


def loopback(names: set[str]) -> Resolver:
    def resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, ("127.0.0.1", port))]

    return resolve


def _event() -> Event:
    return authority_event("a", CERTIFICATE_ISSUED, "1", dt.datetime.now(dt.UTC), {"serial": "1"})


def test_the_webhook_sink_cuts_a_hanging_lookup_at_its_timeout() -> None:
    with hanging() as (resolve, asked):
        sink = WebhookSink(url="https://sink.test/events", secret=b"s" * 32, timeout=0.3, deadline=0.0,
                           resolve=resolve)  # fmt: skip
        started = time.monotonic()
        with pytest.raises(BackendError, match="1 of 1 events not delivered"):
            sink.publish([_event()])
        took = time.monotonic() - started
    assert asked == ["sink.test"] and 0.25 < took < 1.5, took


def test_the_webhook_sink_reaches_a_resolved_name() -> None:
    with server() as port:
        sink = WebhookSink(url=f"http://sink.test:{port}/events", secret=b"s" * 32, timeout=2,
                           resolve=loopback({"sink.test"}))  # fmt: skip
        assert sink.failed_of([_event()]) == []
        unknown = WebhookSink(url=f"http://other.test:{port}/events", secret=b"s" * 32, timeout=2, deadline=0.0,
                              resolve=loopback({"sink.test"}))  # fmt: skip
        assert len(unknown.failed_of([_event()])) == 1


def test_a_linked_report_cuts_a_hanging_lookup_at_its_timeout() -> None:
    with hanging() as (resolve, asked):
        started = time.monotonic()
        with pytest.raises(BackendError, match=r"cannot reach the central authority.*timed out"):
            post_report("https://central.test", "tok", [], ctx=None, timeout=0.3, resolve=resolve)
        took = time.monotonic() - started
    assert asked == ["central.test"] and 0.25 < took < 1.5, took


def test_a_linked_report_reaches_the_central_by_name_over_tls(tmp_path: Path) -> None:
    root, cert_path, key_path = _pki(tmp_path)  # a server certificate for "localhost" only
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_path, key_path)
    client_tls = ssl.create_default_context()
    client_tls.load_verify_locations(cadata=root.public_bytes(serialization.Encoding.PEM).decode())
    with server(tls) as port:
        results = post_report(f"https://localhost:{port}", "tok", [], ctx=client_tls, timeout=2,
                              resolve=loopback({"localhost", "central.test"}))  # fmt: skip
        assert results == [{"host": f"localhost:{port}"}]
        with pytest.raises(BackendError, match="cannot reach"):  # same address, a name the certificate lacks
            post_report(f"https://central.test:{port}", "tok", [], ctx=client_tls, timeout=2,
                        resolve=loopback({"localhost", "central.test"}))  # fmt: skip


def test_a_linked_revocation_cuts_a_hanging_lookup_at_its_timeout() -> None:
    with hanging() as (resolve, asked):
        started = time.monotonic()
        answer = post_revoke("https://edge.test/revoke", "tok", {"serial": "1"}, ssl.create_default_context(), 0.3,
                             resolve=resolve)  # fmt: skip
        took = time.monotonic() - started
    assert not answer.delivered and "timed out" in answer.detail
    assert asked == ["edge.test"] and 0.25 < took < 1.5, took


def test_a_linked_revocation_reaches_a_resolved_name() -> None:
    with server() as port:
        answer = post_revoke(f"http://edge.test:{port}/revoke", "tok", {"serial": "1"},
                             ssl.create_default_context(), 2, resolve=loopback({"edge.test"}))  # fmt: skip
    assert answer.delivered and "(200)" in answer.detail
