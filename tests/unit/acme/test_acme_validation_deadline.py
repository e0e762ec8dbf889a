"""Issue 12 item 13: a validation cannot be held forever, nor hold anyone else's.

A target that drips one byte every 2 s answers every read within the per-read
timeout, so only a total deadline ends it. Behind `cirrus up`'s loop, one
account answering many such challenges may run only a few validations at a
time, on the ACME layer's own threads, and another account's challenge and
finalize go through meanwhile.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.acme.challenges import dns01, http01, tlsalpn01
from shared.acme.identifiers import Identifier
from shared.acme.problems import ACMEProblem
from shared.httpserver import WSGIServer
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import HTTP01Responder, TestCA, b64, build_server, make_csr, provisioner, wsgi_app
from tests.unit.acme.test_acme_deferred_validation import LiveClient, _key_authorization

DRIP_EVERY = 2.0
DEADLINE = 2.0  # the provisioners' validationDeadline here
PER_READ = 5.0  # validationTimeout: longer than the drip interval, so only the deadline can end a drip


class DripServer:
    """A loopback TCP server that, once a client has sent something, answers one byte every `every` seconds."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, payload: bytes, every: float = DRIP_EVERY) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.payload, self.every = payload, every
        self.stop = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                conn.recv(4096)
                for i in range(10_000):
                    if self.stop.wait(self.every):
                        return
                    conn.sendall(self.payload[i % len(self.payload) : i % len(self.payload) + 1])
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


HTTP_DRIP = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 4000


def _bounded(fn: Callable[[], None], limit: float) -> tuple[BaseException | None, float]:
    """Run `fn` on a thread; (its exception, seconds taken). Fails the test if it is still running after `limit`."""
    out: list[BaseException | None] = []
    started = time.monotonic()

    def run() -> None:
        try:
            fn()
            out.append(None)
        except BaseException as exc:  # handed to the test
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"the validation was still running after {limit} s"
    return out[0], time.monotonic() - started


LOOP = Identifier("ip", "127.0.0.1")


def test_http01_drip_fails_by_its_deadline() -> None:
    drip = DripServer(payload=HTTP_DRIP)
    try:
        cfg = provisioner(http01Port=drip.port, validationDeadline=DEADLINE, validationTimeout=PER_READ)
        exc, took = _bounded(lambda: http01.validate(LOOP, "tok", "tok.ka", cfg), DEADLINE + 6)
    finally:
        drip.close()
    assert isinstance(exc, ACMEProblem) and exc.kind == "connection" and "deadline" in str(exc)
    assert DEADLINE - 0.2 <= took < DEADLINE + 1.5


def test_tls_alpn01_drip_fails_by_its_deadline() -> None:
    drip = DripServer(payload=b"\x16\x03\x03\x40\x00" + b"\x02" * 16000)  # a ServerHello record that never ends
    try:
        cfg = provisioner(tlsalpn01Port=drip.port, validationDeadline=DEADLINE, validationTimeout=PER_READ)
        exc, took = _bounded(lambda: tlsalpn01.validate(LOOP, "tok", "tok.ka", cfg), DEADLINE + 6)
    finally:
        drip.close()
    assert isinstance(exc, ACMEProblem) and exc.kind == "tls"
    assert took < DEADLINE + 1.5


def test_dns01_lookup_ends_by_the_deadline() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a resolver that never answers
    silent.bind(("127.0.0.1", 0))
    try:
        cfg = provisioner(
            dnsResolver=f"127.0.0.1:{silent.getsockname()[1]}", validationDeadline=DEADLINE, validationTimeout=8
        )
        exc, took = _bounded(
            lambda: dns01.validate(Identifier("dns", "a.example.test"), "tok", "tok.ka", cfg), DEADLINE + 10
        )
    finally:
        silent.close()
    assert isinstance(exc, ACMEProblem) and exc.kind == "dns"
    assert took < DEADLINE + 1.5


# ---------------------------------------------------------------------- behind cirrus up's loop


@pytest.fixture
def slow_target(responder: HTTP01Responder) -> Iterator[DripServer]:
    """127.0.0.2 drips on the port where 127.0.0.1 answers promptly (the provisioner's http01Port)."""
    drip = DripServer("127.0.0.2", responder.port, payload=HTTP_DRIP)
    yield drip
    drip.close()


@pytest.fixture
def loop(responder: HTTP01Responder) -> Iterator[tuple[int, Any]]:
    store = MemoryStore()
    prov = provisioner(
        "acme",
        http01Port=responder.port,
        validationDeadline=DEADLINE,
        validationTimeout=PER_READ,
        validationsPerAccount=2,
        allowPrivateAddresses=True,
    )
    server = build_server(store, TestCA(store), [prov])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    httpd = WSGIServer(sock, wsgi_app(server), None)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield sock.getsockname()[1], server
    httpd.shutdown()
    httpd.server_close()


def _account(port: int) -> LiveClient:
    c = LiveClient(port)
    status, headers, _ = c.post(c.base + "/new-account", {"termsOfServiceAgreed": True})
    assert status == 201
    c.kid = headers["Location"]
    return c


def _challenge(c: LiveClient, ip: str) -> tuple[str, str, dict[str, Any]]:
    status, headers, order = c.post(c.base + "/new-order", {"identifiers": [{"type": "ip", "value": ip}]})
    assert status == 201, order
    authz_url = order["authorizations"][0]
    authz = c.post(authz_url, None)[2]
    return headers["Location"], authz_url, next(x for x in authz["challenges"] if x["type"] == "http-01")


def test_a_dripping_account_holds_neither_the_loop_nor_another_accounts_challenge_and_finalize(
    loop: tuple[int, Any], responder: HTTP01Responder, slow_target: DripServer
) -> None:
    port, _ = loop
    slow = _account(port)
    slow_challenges = [_challenge(slow, "127.0.0.2") for _ in range(10)]
    for _, _, ch in slow_challenges:  # each on a connection of its own, all under way at once
        status, _, body = slow.post(ch["url"], {}, other=True)
        assert status == 200 and body["status"] == "processing"
    time.sleep(0.3)
    assert slow_target.connections == 2  # its bound: the rest wait their turn, holding no thread

    started = time.monotonic()
    other = _account(port)
    order_url, authz_url, ch = _challenge(other, "127.0.0.1")
    responder.tokens[ch["token"]] = _key_authorization(other, ch["token"])
    status, _, body = other.post(ch["url"], {})
    assert status == 200
    authz = other.post(authz_url, None)[2]  # same connection: answered once the validation is recorded
    assert authz["status"] == "valid", authz
    order = other.post(order_url, None)[2]
    _, csr = make_csr(["127.0.0.1"])
    status, _, body = other.post(order["finalize"], {"csr": b64(csr)})
    assert status == 200
    polled = other.post(order_url, None)[2]
    assert polled["status"] == "valid" and polled["certificate"]
    assert time.monotonic() - started < DEADLINE  # none of it waited for a dripping validation

    # The dripping validations end by their deadline, as `invalid` with a connection problem.
    _, first_authz, _ = slow_challenges[0]
    give_up = time.monotonic() + DEADLINE + 5
    while True:
        authz = slow.post(first_authz, None, other=True)[2]
        if authz["status"] != "pending" or time.monotonic() > give_up:
            break
        time.sleep(0.2)
    assert authz["status"] == "invalid", authz
    error = authz["challenges"][0]["error"]
    assert error["type"] == "urn:ietf:params:acme:error:connection" and "deadline" in error["detail"]
