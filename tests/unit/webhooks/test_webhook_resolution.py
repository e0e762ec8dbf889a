"""The hook's timeout bounds name resolution too (shared.webhooks.resolve).

The system resolver cannot be made slow on loopback (a hosts entry answers at once), so these
tests give the client a resolver function (the boundary the client has): one that hangs, one that
fails, one that maps names to loopback. The HTTP side is real: loopback servers, real TLS.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from shared.errors import Unavailable
from shared.webhooks import resolve as resolution
from shared.webhooks.client import WebhookClient
from tests.unit.webhooks.test_webhook_client import _hook, _pki


class _Echo(http.server.BaseHTTPRequestHandler):
    """Allows, answering with the Host header it was sent."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"allow": true, "data": "' + self.headers["Host"].encode() + b'"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def echo_server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def to_loopback(names: set[str]) -> resolution.Resolve:
    def resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "unknown")
        return [(socket.AF_INET, ("127.0.0.1", port))]

    return resolve


def test_a_resolver_that_hangs_is_cut_at_the_hooks_timeout() -> None:
    release = threading.Event()
    asked: list[str] = []

    def hangs(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        asked.append(host)
        release.wait(30)
        return [(socket.AF_INET, ("127.0.0.1", port))]

    url = "https://hook.test:8443/hook"  # never connected to: the lookup does not end in time
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="timed out"):
            WebhookClient(resolve=hangs).call(_hook(url, timeout=0.4), url, b"{}")
        took = time.monotonic() - started
        assert asked == ["hook.test"]  # a timeout is not retried
        assert 0.35 < took < 1.0, took
    finally:
        release.set()


def test_a_resolved_name_is_reached_and_keeps_its_host_header() -> None:
    seen: list[str] = []

    def recorded(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        seen.append(host)
        return [(socket.AF_INET, ("127.0.0.1", port))]

    with echo_server() as port:
        url = f"http://localhost:{port}/hook"  # http is allowed to loopback names only
        answer = WebhookClient(resolve=recorded).call(_hook(url), url, b"{}")
        assert answer.data == f"localhost:{port}" and seen == ["localhost"]


def test_a_name_the_resolver_does_not_know_is_unreachable() -> None:
    url = "https://nowhere.test:8443/hook"
    with pytest.raises(Unavailable, match="unreachable"):
        WebhookClient(resolve=to_loopback(set()), retry_delay=0.05).call(_hook(url), url, b"{}")


def test_tls_checks_the_hooks_name_not_the_address_it_resolved_to(tmp_path: Path) -> None:
    root, cert_path, key_path = _pki(tmp_path)  # a server certificate for "localhost" only
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_path, key_path)
    client = WebhookClient(roots=[root], retry_delay=0.05, resolve=to_loopback({"localhost", "hook.test"}))
    with echo_server(tls) as port:
        good = f"https://localhost:{port}/hook"
        assert client.call(_hook(good), good, b"{}").data == f"localhost:{port}"
        wrong = f"https://hook.test:{port}/hook"  # same address, a name the certificate does not carry
        with pytest.raises(Unavailable):
            client.call(_hook(wrong), wrong, b"{}")


def test_hung_lookups_are_capped() -> None:
    """A resolver that never answers holds at most MAX_PENDING threads; later calls time out unstarted."""
    release = threading.Event()
    started = 0
    lock = threading.Lock()

    def hangs(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        nonlocal started
        with lock:
            started += 1
        release.wait(30)
        return []

    try:
        for _ in range(resolution.MAX_PENDING + 4):
            with pytest.raises(resolution.ResolutionTimedOut):
                resolution.resolve_within("hook.test", 443, 0.02, hangs)
        assert started == resolution.MAX_PENDING
    finally:
        release.set()
    deadline = time.monotonic() + 5  # the released lookups hand their places back
    while True:
        try:
            assert resolution.resolve_within("hook.test", 443, 0.5, to_loopback({"hook.test"}))
            break
        except resolution.ResolutionTimedOut:
            assert time.monotonic() < deadline
