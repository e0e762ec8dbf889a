"""Events to a webhook: signed CloudEvents, kept when the receiver is down, re-delivered by the sweep,
dead-lettered after the last try, and exactly one `endpoint.expiring` per certificate (issue 17).

The receiver is a real HTTP server on loopback that checks every signature with the shared secret.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.clock import FixedClock
from shared.config import Settings
from shared.events.delivery import COLLECTION, MAX_ATTEMPTS
from shared.events.webhook import SIGNATURE_HEADER, verify_signature
from shared.runtime import Services, build_services
from tests.helpers import make_csr, mint_sign_token

SECRET = b"an-example-shared-secret-0123456789"


class Receiver:
    """A webhook receiver: records events whose signature verifies; can answer an error status."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.events: list[dict[str, object]] = []
        self.bad_signatures = 0
        self.status = 204
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = int(dt.datetime.now(dt.UTC).timestamp())
                if not verify_signature(SECRET, self.headers.get(SIGNATURE_HEADER, ""), body, now=now):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                elif receiver.status < 300:
                    event = json.loads(body)
                    assert self.headers["ce-id"] == event["id"]
                    receiver.events.append(event)
                    self.send_response(receiver.status)
                else:
                    self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def types(self) -> list[object]:
        return [e["type"] for e in self.events]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(_free_port())
    yield r
    r.stop()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def services(authority_dir: Path, receiver: Receiver, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("CIRRUS_WEBHOOK_SECRET", SECRET.decode())
    config = json.loads((authority_dir / "config.json").read_text())
    config["events"] = {"sinks": ["log", f"webhook:http://127.0.0.1:{receiver.port}/hook"]}
    (authority_dir / "config.json").write_text(json.dumps(config))
    s = build_services(Settings.load(authority_dir / "config.json"), clock=clock)
    for sink in s.sinks:  # keep the test quick: one short try per delivery
        inner = getattr(sink, "sink", None)
        if inner is not None:
            inner._deadline, inner._timeout = 0.2, 0.5
    yield s
    s.close()


def _issue(services: Services, authority_dir: Path, name: str) -> None:
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    csr, _ = make_csr(name, [name])
    answer = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name, [name])})
    assert answer.status_code == 201, answer.text


def _deliveries(services: Services, state: str) -> list[dict[str, object]]:
    return [d for _, d, _ in services.store.find_documents(COLLECTION, "state", state, limit=100)]


def test_signed_events_reach_a_live_receiver(services: Services, authority_dir: Path, receiver: Receiver) -> None:
    receiver.start()
    _issue(services, authority_dir, "live.example.com")
    assert sorted(receiver.types()) == ["dev.cirrus.certificate.issued", "dev.cirrus.endpoint.created"]
    assert receiver.bad_signatures == 0
    assert _deliveries(services, "pending") == []


def test_a_receiver_that_was_down_gets_each_event_once(
    services: Services, authority_dir: Path, receiver: Receiver, clock: FixedClock
) -> None:
    _issue(services, authority_dir, "down.example.com")  # nobody listens: the answer is still 201
    pending = _deliveries(services, "pending")
    assert len(pending) == 2 and receiver.events == []
    assert services.redeliver_events() == 0  # not due yet (backoff), and still down
    clock.advance(dt.timedelta(minutes=2))
    assert services.redeliver_events() == 0  # due, still down: retried later
    receiver.start()
    clock.advance(dt.timedelta(minutes=5))
    assert services.redeliver_events() == 2
    assert sorted(receiver.types()) == ["dev.cirrus.certificate.issued", "dev.cirrus.endpoint.created"]
    clock.advance(dt.timedelta(hours=1))
    assert services.redeliver_events() == 0  # delivered once, not again
    assert len(receiver.events) == 2 and len({e["id"] for e in receiver.events}) == 2
    assert len(_deliveries(services, "delivered")) == 2


def test_a_receiver_answering_500_is_retried_then_dead_lettered(
    services: Services, authority_dir: Path, receiver: Receiver, clock: FixedClock
) -> None:
    receiver.status = 500
    receiver.start()
    _issue(services, authority_dir, "broken.example.com")
    for _ in range(MAX_ATTEMPTS + 2):
        clock.advance(dt.timedelta(hours=5))
        services.redeliver_events()
    assert len(_deliveries(services, "dead")) == 2
    assert _deliveries(services, "pending") == []
    dead = _deliveries(services, "dead")[0]
    assert dead["attempts"] == MAX_ATTEMPTS
    assert "PRIVATE KEY" not in json.dumps(dead)


def test_exactly_one_expiring_alert_across_sweeps(
    services: Services, authority_dir: Path, receiver: Receiver, clock: FixedClock
) -> None:
    receiver.start()
    _issue(services, authority_dir, "lapsing.example.com")  # 24 h certificate: alert window 8 h
    clock.advance(dt.timedelta(hours=15))  # 9 h left: not yet
    assert services.expiry_alerts() == 0
    clock.advance(dt.timedelta(hours=2))  # 7 h left
    assert services.expiry_alerts() == 1
    for _ in range(3):
        clock.advance(dt.timedelta(minutes=10))
        assert services.expiry_alerts() == 0
    assert receiver.types().count("dev.cirrus.endpoint.expiring") == 1
    receiver.stop()
    clock.advance(dt.timedelta(hours=8))  # lapsed while the receiver is down
    assert services.expiry_alerts() == 1
    assert "dev.cirrus.endpoint.expired" not in receiver.types()
    receiver.start()
    clock.advance(dt.timedelta(minutes=5))
    assert services.redeliver_events() == 1
    assert receiver.types().count("dev.cirrus.endpoint.expired") == 1
    assert receiver.bad_signatures == 0


def test_forged_or_stale_signatures_do_not_verify() -> None:
    from shared.events.webhook import signature

    body = b'{"id":"1"}'
    header = signature(SECRET, 1_000_000, body)
    assert verify_signature(SECRET, header, body, now=1_000_010)
    assert not verify_signature(SECRET, header, body + b" ", now=1_000_010)
    assert not verify_signature(b"another-secret-of-some-length", header, body, now=1_000_010)
    assert not verify_signature(SECRET, header, body, now=1_000_000 + 3600)
    assert not verify_signature(SECRET, "t=²,v1=00", body, now=1_000_000)


def test_webhook_sink_needs_a_secret_and_a_plain_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.errors import ConfigError
    from shared.events.log import open_sinks

    monkeypatch.delenv("CIRRUS_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("CIRRUS_WEBHOOK_SECRET_FILE", raising=False)
    with pytest.raises(ConfigError, match="CIRRUS_WEBHOOK_SECRET"):
        open_sinks(["webhook:https://example.com/hook"])
    monkeypatch.setenv("CIRRUS_WEBHOOK_SECRET", SECRET.decode())
    with pytest.raises(ConfigError, match="user info"):
        open_sinks(["webhook:https://user:pw@example.com/hook"])
    with pytest.raises(ConfigError):
        open_sinks(["webhook:ftp://example.com/hook"])


def test_a_hanging_receiver_delays_one_issuance_not_every_one(
    services: Services, authority_dir: Path, clock: FixedClock
) -> None:
    """The circuit breaker: after one timeout, events are kept for the sweep without waiting."""
    import time

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)  # accepts connections in the backlog and never answers
    try:
        for sink in services.sinks:
            inner = getattr(sink, "sink", None)
            if inner is not None:
                inner.url = f"http://127.0.0.1:{hang.getsockname()[1]}/hook"
                inner._deadline, inner._timeout = 0.5, 0.5
        started = time.monotonic()
        _issue(services, authority_dir, "first.example.com")
        first = time.monotonic() - started
        started = time.monotonic()
        for n in range(3):
            _issue(services, authority_dir, f"next{n}.example.com")
        rest = time.monotonic() - started
        assert first >= 0.5
        assert rest < first, (first, rest)
        assert len(_deliveries(services, "pending")) == 8  # every event kept for the sweep
    finally:
        hang.close()
