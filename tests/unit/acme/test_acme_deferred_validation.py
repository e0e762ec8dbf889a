"""Challenge validation and issuance after the answer (RFC 8555 s.7.5.1, 7.4) behind `cirrus up`'s HTTP loop.

The answer says `processing`; the validation runs once the answer is written;
the same connection's next request (the client's poll) is read only after the
outcome is recorded, while another connection meanwhile sees `processing`
with a Retry-After. Where no loop can run work after the answer (the
Functions, the WSGI test client) the challenge is validated before answering,
and a validation that was lost (its worker stopped) goes stale and may be
started again.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.acme.repo import ORDERS, ts
from shared.clock import FixedClock
from shared.httpserver import WSGIServer
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    ACMETestClient,
    HTTP01Responder,
    TestCA,
    build_server,
    make_jws,
    provisioner,
    wsgi_app,
)

IP = [{"type": "ip", "value": "127.0.0.1"}]


class LiveClient:
    """A minimal ACME client on one keep-alive HTTP connection (or a fresh one per call with `other`)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}/acme/acme"
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.nonce = ""
        status, headers, body = self._call("HEAD", self.base + "/new-nonce", None)
        assert "Replay-Nonce" in headers, (status, headers, body)
        self.kid: str | None = None

    def _call(self, method: str, url: str, body: Any, conn: http.client.HTTPConnection | None = None) -> Any:
        c = conn or self.conn
        data = None if body is None else json.dumps(body).encode()
        path = url.split(str(self.port), 1)[1]  # origin-form request target
        c.request(method, path, body=data, headers={"Content-Type": "application/jose+json"})
        r = c.getresponse()
        payload = r.read()
        headers = {k: v for k, v in r.getheaders()}
        if "Replay-Nonce" in headers:
            self.nonce = headers["Replay-Nonce"]
        return r.status, headers, json.loads(payload) if payload.startswith(b"{") else payload

    def post(self, url: str, payload: Any, *, other: bool = False, jws: Any = None) -> Any:
        body = jws or make_jws(self.key, url, payload, nonce=self.nonce, kid=self.kid)
        if not other:
            return self._call("POST", url, body)
        fresh = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            return self._call("POST", url, body, fresh)
        finally:
            fresh.close()


@pytest.fixture
def live(responder: HTTP01Responder) -> Iterator[tuple[LiveClient, MemoryStore]]:
    store = MemoryStore()
    ca = TestCA(store)
    server = build_server(store, ca, [provisioner("acme", http01Port=responder.port)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    httpd = WSGIServer(sock, wsgi_app(server), None)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    client = LiveClient(sock.getsockname()[1])
    status, headers, _ = client.post(client.base + "/new-account", {"termsOfServiceAgreed": True})
    assert status == 201
    client.kid = headers["Location"]
    client.ca = ca  # type: ignore[attr-defined]
    yield client, store
    client.conn.close()
    httpd.shutdown()
    httpd.server_close()


def _challenge(client: LiveClient) -> tuple[str, dict[str, Any]]:
    status, _, order = client.post(client.base + "/new-order", {"identifiers": IP})
    assert status == 201
    authz_url = order["authorizations"][0]
    authz = client.post(authz_url, None)[2]
    return authz_url, next(c for c in authz["challenges"] if c["type"] == "http-01")


def _key_authorization(client: LiveClient, token: str) -> str:
    probe = ACMETestClient.__new__(ACMETestClient)
    probe.key = client.key
    return probe.key_authorization(token)


def test_answer_says_processing_and_the_poll_on_the_same_connection_sees_the_outcome(
    live: tuple[LiveClient, MemoryStore], responder: HTTP01Responder
) -> None:
    client, _ = live
    authz_url, ch = _challenge(client)
    responder.tokens[ch["token"]] = _key_authorization(client, ch["token"])
    responder.hold = threading.Event()  # the applicant answers the validator only when released
    status, headers, body = client.post(ch["url"], {})
    assert status == 200 and body["status"] == "processing"
    assert headers["Retry-After"] == "1" and 'rel="up"' in headers["Link"]
    # Meanwhile another connection sees the validation under way (and when to ask again).
    status, headers, other = client.post(authz_url, None, other=True)
    assert other["status"] == "pending" and other["challenges"][0]["status"] == "processing"
    assert headers["Retry-After"] == "1"
    threading.Timer(0.3, responder.hold.set).start()
    status, _, authz = client.post(authz_url, None)  # same connection: answered once the outcome is recorded
    assert authz["status"] == "valid" and authz["challenges"][0]["status"] == "valid"
    assert authz["challenges"][0]["validated"]


def test_a_failed_validation_is_recorded_and_a_replayed_answer_is_refused(
    live: tuple[LiveClient, MemoryStore], responder: HTTP01Responder
) -> None:
    client, _ = live
    authz_url, ch = _challenge(client)
    responder.tokens[ch["token"]] = "not-the-key-authorization"
    jws = make_jws(client.key, ch["url"], {}, nonce=client.nonce, kid=client.kid)
    status, _, body = client.post(ch["url"], {}, jws=jws)
    assert status == 200 and body["status"] == "processing"
    status, _, replay = client.post(ch["url"], {}, jws=jws)  # the nonce was spent by the processing write
    assert status == 400 and replay["type"] == "urn:ietf:params:acme:error:badNonce"
    authz = client.post(authz_url, None)[2]
    assert authz["status"] == "invalid"
    assert authz["challenges"][0]["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"


def test_without_after_response_work_the_answer_waits_and_a_lost_validation_goes_stale(
    responder: HTTP01Responder,
) -> None:
    store = MemoryStore()
    clock = FixedClock(dt.datetime.now(dt.UTC))
    client = ACMETestClient(wsgi_app(build_server(store, TestCA(store), [provisioner("acme", http01Port=responder.port)], clock=clock)))
    client.register()
    r = client.post(client.directory["newOrder"], {"identifiers": IP})
    order_id = r.headers["Location"].rsplit("/", 1)[-1]
    authz_url = r.get_json()["authorizations"][0]
    ch = next(c for c in client.post(authz_url, None).get_json()["challenges"] if c["type"] == "http-01")
    responder.tokens[ch["token"]] = client.key_authorization(ch["token"])

    def mark_processing(since: dt.datetime) -> None:  # as a worker that stopped mid-validation left it
        doc, version = store.get_document(ORDERS, order_id)  # type: ignore[misc]
        authzs = [dict(a) for a in doc["o"]["authzs"]]
        authzs[0]["challenges"] = [
            {**c, "status": "processing", "processingSince": ts(since)} if c["id"] == ch["url"].rsplit("/", 1)[-1] else c
            for c in authzs[0]["challenges"]
        ]
        assert store.update_document(ORDERS, order_id, {**doc, "o": {**doc["o"], "authzs": authzs}}, expected_version=version)

    mark_processing(clock.now())
    body = client.post(ch["url"], {}).get_json()
    assert body["status"] == "processing"  # under way: not started twice
    clock.advance(dt.timedelta(hours=1))
    mark_processing(clock.now() - dt.timedelta(hours=1))
    body = client.post(ch["url"], {}).get_json()
    assert body["status"] == "valid"  # stale: validated again, before the answer
    assert client.post(authz_url, None).get_json()["status"] == "valid"


def _ready_order(client: LiveClient, responder: HTTP01Responder) -> tuple[str, dict[str, Any]]:
    status, headers, order = client.post(client.base + "/new-order", {"identifiers": IP})
    authz = client.post(order["authorizations"][0], None)[2]
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
    responder.tokens[ch["token"]] = _key_authorization(client, ch["token"])
    client.post(ch["url"], {})
    order = client.post(headers["Location"], None)[2]
    assert order["status"] == "ready"
    return headers["Location"], order


def test_finalize_answers_processing_and_the_order_poll_sees_the_certificate(
    live: tuple[LiveClient, MemoryStore], responder: HTTP01Responder
) -> None:
    from tests.unit.acme.acme_support import b64, make_csr

    client, _ = live
    order_url, order = _ready_order(client, responder)
    _, csr = make_csr(["127.0.0.1"])
    status, headers, body = client.post(order["finalize"], {"csr": b64(csr)})
    assert status == 200 and body["status"] == "processing"
    assert headers["Retry-After"] == "1" and headers["Location"] == order_url
    polled = client.post(order_url, None)[2]  # same connection: read once the issuance is recorded
    assert polled["status"] == "valid"
    status, headers, pem = client.post(polled["certificate"], None)
    assert status == 200 and pem.startswith(b"-----BEGIN CERTIFICATE-----")


def test_a_refused_issuance_after_the_answer_leaves_the_order_invalid(
    live: tuple[LiveClient, MemoryStore], responder: HTTP01Responder
) -> None:
    from shared.errors import Forbidden
    from tests.unit.acme.acme_support import b64, make_csr

    client, _ = live
    order_url, order = _ready_order(client, responder)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise Forbidden("policy forbids this certificate")

    client.ca.issue = refuse  # type: ignore[attr-defined]
    _, csr = make_csr(["127.0.0.1"])
    status, _, body = client.post(order["finalize"], {"csr": b64(csr)})
    assert status == 200 and body["status"] == "processing"
    polled = client.post(order_url, None)[2]
    assert polled["status"] == "invalid"
    assert polled["error"]["type"].startswith("urn:ietf:params:acme:error:")


def test_an_order_whose_issuance_was_lost_goes_invalid_after_a_while(responder: HTTP01Responder) -> None:
    store = MemoryStore()
    clock = FixedClock(dt.datetime.now(dt.UTC))
    server = build_server(store, TestCA(store), [provisioner("acme", http01Port=responder.port)], clock=clock)
    client = ACMETestClient(wsgi_app(server))
    client.register()
    r = client.post(client.directory["newOrder"], {"identifiers": IP})
    order_url = r.headers["Location"]
    order_id = order_url.rsplit("/", 1)[-1]
    doc, version = store.get_document(ORDERS, order_id)  # type: ignore[misc]
    # As a worker that stopped between "processing" and the certificate leaves it:
    body = {**doc["o"], "status": "processing", "processingSince": ts(clock.now())}
    assert store.update_document(ORDERS, order_id, {**doc, "o": body}, expected_version=version)
    polled = client.post(order_url, None)
    assert polled.get_json()["status"] == "processing" and polled.headers["Retry-After"] == "1"
    clock.advance(dt.timedelta(minutes=11))
    polled = client.post(order_url, None).get_json()
    assert polled["status"] == "invalid"
    assert polled["error"]["type"] == "urn:ietf:params:acme:error:serverInternal"


def test_an_issuance_that_outlives_its_order_leaves_it_invalid(
    live: tuple[LiveClient, MemoryStore], responder: HTTP01Responder
) -> None:
    """A poll gave the order up (stale `processing` -> invalid) while the issuance ran: it stays invalid."""
    from tests.unit.acme.acme_support import b64, make_csr

    client, store = live
    order_url, order = _ready_order(client, responder)
    order_id = order_url.rsplit("/", 1)[-1]
    real_issue = client.ca.issue  # type: ignore[attr-defined]

    def slow_issue(*args: Any, **kwargs: Any) -> Any:
        doc, version = store.get_document(ORDERS, order_id)  # type: ignore[misc]
        assert doc["o"]["status"] == "processing"
        given_up = {**doc["o"], "status": "invalid", "error": {"type": "urn:ietf:params:acme:error:serverInternal"}}
        assert store.update_document(ORDERS, order_id, {**doc, "o": given_up}, expected_version=version)
        return real_issue(*args, **kwargs)

    client.ca.issue = slow_issue  # type: ignore[attr-defined]
    _, csr = make_csr(["127.0.0.1"])
    status, _, body = client.post(order["finalize"], {"csr": b64(csr)})
    assert status == 200 and body["status"] == "processing"
    polled = client.post(order_url, None)[2]
    assert polled["status"] == "invalid" and "certificate" not in polled
    assert polled["error"]["type"] == "urn:ietf:params:acme:error:serverInternal"
