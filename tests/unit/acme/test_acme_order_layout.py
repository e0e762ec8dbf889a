"""The order document: store round trips per order, embedded authorizations, and the older layout.

An order embeds its authorizations and, once valid, its certificate chain, so a
complete order costs one document create and three compare-and-set updates.
Orders, authorizations and certificates written in the older layout (one
document each) must still be served after an upgrade.
"""

from __future__ import annotations

import collections
import datetime as dt
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.acme.identifiers import Identifier
from shared.acme.repo import AUTHZS, CERTS, ORDERS, ts
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    ACMETestClient,
    ChallTestSrv,
    HTTP01Responder,
    TestCA,
    b64,
    build_server,
    make_csr,
    provisioner,
    wsgi_app,
)


class CountingStore(MemoryStore):
    """The real in-memory store, counting the calls the ACME layer makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter[str] = collections.Counter()

    def claim(self, namespace: str, key: str, expires_at: dt.datetime) -> bool:
        self.calls["claim"] += 1
        return super().claim(namespace, key, expires_at)

    def create_document(self, collection: str, doc_id: str, data: dict[str, Any], **kw: Any) -> bool:
        self.calls["create_document"] += 1
        return super().create_document(collection, doc_id, data, **kw)

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        self.calls["get_document"] += 1
        return super().get_document(collection, doc_id)

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int) -> bool:
        self.calls["update_document"] += 1
        return super().update_document(collection, doc_id, data, expected_version=expected_version)

    def create_document_claiming(self, collection: str, doc_id: str, data: dict[str, Any], **kw: Any) -> bool:
        self.calls["create_document_claiming"] += 1
        return super().create_document_claiming(collection, doc_id, data, **kw)

    def update_document_claiming(self, collection: str, doc_id: str, data: dict[str, Any], **kw: Any) -> bool:
        self.calls["update_document_claiming"] += 1
        return super().update_document_claiming(collection, doc_id, data, **kw)

    def find_documents(self, collection: str, field: str, value: str, *, limit: int = 100) -> Any:
        self.calls["find_documents"] += 1
        return super().find_documents(collection, field, value, limit=limit)


def _client(
    store: MemoryStore, responder: HTTP01Responder, resolver: str | None = None
) -> tuple[ACMETestClient, TestCA]:
    ca = TestCA(store)
    # ordersPerMinute 0: the rate-limit window document is not part of what is counted here.
    prov = provisioner("acme", http01Port=responder.port, dnsResolver=resolver, ordersPerMinute=0)
    app = wsgi_app(build_server(store, ca, [prov]))
    client = ACMETestClient(app)
    assert client.register().status_code == 201
    return client, ca


def _answer(client: ACMETestClient, responder: HTTP01Responder, authz_url: str) -> dict[str, Any]:
    authz = client.post(authz_url, None).get_json()
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
    responder.tokens[ch["token"]] = client.key_authorization(ch["token"])
    r = client.post(ch["url"], {})
    assert r.status_code == 200, r.get_json()
    return dict(r.get_json())


def test_complete_order_store_round_trips(responder: HTTP01Responder) -> None:
    store = CountingStore()
    client, _ = _client(store, responder)
    ip = [{"type": "ip", "value": "127.0.0.1"}]
    nonce = client.nonce()
    store.calls.clear()
    r = client.post(client.directory["newOrder"], {"identifiers": ip}, nonce=nonce)
    assert r.status_code == 201
    # newOrder: the account read and one write: the order with its authorization, spending the nonce.
    assert store.calls == {"get_document": 1, "create_document_claiming": 1}
    order_url, order = r.headers["Location"], r.get_json()
    assert _answer(client, responder, order["authorizations"][0])["status"] == "valid"
    # The challenge's compare-and-set moved the order to ready: reading it writes nothing.
    store.calls.clear()
    assert client.post(order_url, None).get_json()["status"] == "ready"
    assert store.calls["update_document"] == 0
    _, csr = make_csr(["127.0.0.1"])
    store.calls.clear()
    r = client.post(order["finalize"], {"csr": b64(csr)})
    assert r.get_json()["status"] == "valid", r.get_json()
    # finalize: account + order read once; ready -> processing (spending the nonce) -> valid (with the
    # chain); no separate nonce claim and no certificate document.
    assert store.calls["get_document"] == 2
    assert store.calls["update_document_claiming"] == 1
    assert store.calls["update_document"] == 1
    assert store.calls["claim"] == 0
    assert store.calls["create_document"] == 0
    store.calls.clear()
    pem = client.post(r.get_json()["certificate"], None)
    assert pem.status_code == 200 and b"BEGIN CERTIFICATE" in pem.data
    assert store.calls == {"get_document": 2, "claim": 1}


def test_concurrent_challenge_answers_of_one_order(responder: HTTP01Responder, challtestsrv: ChallTestSrv) -> None:
    """Both authorizations live in one document: simultaneous answers must both land."""
    store = MemoryStore()
    client, _ = _client(store, responder, challtestsrv.resolver)
    names = [{"type": "dns", "value": "one.example.test"}, {"type": "dns", "value": "two.example.test"}]
    r = client.post(client.directory["newOrder"], {"identifiers": names})
    order_url, order = r.headers["Location"], r.get_json()
    challenges = []
    for url in order["authorizations"]:
        authz = client.post(url, None).get_json()
        ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
        responder.tokens[ch["token"]] = client.key_authorization(ch["token"])
        challenges.append(ch["url"])
    signed = [(u, _signed(client, u, {})) for u in challenges]
    results: list[int] = []
    barrier = threading.Barrier(len(signed))

    def go(url: str, body: dict[str, str]) -> None:
        barrier.wait()
        results.append(client.raw(url, body).status_code)

    threads = [threading.Thread(target=go, args=s) for s in signed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200]
    for url in order["authorizations"]:
        assert client.post(url, None).get_json()["status"] == "valid"
    assert client.post(order_url, None).get_json()["status"] == "ready"


def _signed(client: ACMETestClient, url: str, payload: Any) -> dict[str, str]:
    from tests.unit.acme.acme_support import make_jws

    return make_jws(client.key, url, payload, nonce=client.nonce(), kid=client.kid)


def test_deactivating_an_authorization_invalidates_a_ready_order(responder: HTTP01Responder) -> None:
    client, _ = _client(MemoryStore(), responder)
    r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    order_url, order = r.headers["Location"], r.get_json()
    _answer(client, responder, order["authorizations"][0])
    assert client.post(order_url, None).get_json()["status"] == "ready"
    assert client.post(order["authorizations"][0], {"status": "deactivated"}).get_json()["status"] == "deactivated"
    assert client.post(order_url, None).get_json()["status"] == "invalid"
    _, csr = make_csr(["127.0.0.1"])
    r = client.post(order["finalize"], {"csr": b64(csr)})
    assert r.status_code == 403 and r.get_json()["type"].endswith(":orderNotReady")


def test_older_layout_orders_authorizations_and_certificates_are_served(responder: HTTP01Responder) -> None:
    """Documents as the previous layout wrote them: a flat order, an authz document, a certificate document."""
    store = MemoryStore()
    client, ca = _client(store, responder)
    assert client.kid is not None
    account_id = client.kid.rsplit("/", 1)[-1]
    now = dt.datetime.now(dt.UTC)
    expires = ts(now + dt.timedelta(hours=1))
    store.create_document(
        AUTHZS,
        "oldauthz",
        {
            "provisioner": "acme",
            "accountId": account_id,
            "identifier": {"type": "ip", "value": "127.0.0.1"},
            "wildcard": False,
            "status": "pending",
            "expires": expires,
            "token": "oldtoken" + "A" * 35,
            "challenges": [{"id": "oldch", "type": "http-01", "status": "pending"}],
        },
    )
    store.create_document(
        ORDERS,
        "oldorder",
        {
            "provisioner": "acme",
            "accountId": account_id,
            "status": "pending",
            "expires": expires,
            "identifiers": [{"type": "ip", "value": "127.0.0.1"}],
            "authzIds": ["oldauthz"],
            "notBefore": None,
            "notAfter": None,
            "replaces": None,
            "replacesId": None,
            "certificateId": None,
            "error": None,
            "createdAt": ts(now),
        },
    )
    order_url = client.base + "/order/oldorder"
    order = client.post(order_url, None).get_json()
    assert order["status"] == "pending"
    assert order["authorizations"] == [client.base + "/authz/oldauthz"]
    assert _answer(client, responder, order["authorizations"][0])["status"] == "valid"
    assert client.post(order_url, None).get_json()["status"] == "ready"
    _, csr = make_csr(["127.0.0.1"])
    r = client.post(order["finalize"], {"csr": b64(csr)})
    assert r.get_json()["status"] == "valid", r.get_json()
    new_chain = client.post(r.get_json()["certificate"], None)
    assert new_chain.status_code == 200

    # A certificate recorded in an `acme_certs` document: downloadable, and its account may revoke it
    # (for a name the account holds no authorization for, so only the ownership record allows it).
    name = "legacy.example.com"
    _, other_csr = make_csr([name])
    other = ca.issue(
        x509.load_der_x509_csr(other_csr),
        [Identifier("dns", name)],
        provisioner="acme",
        account_id=account_id,
        replaces=None,
        not_before=None,
        not_after=None,
    )
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in (other.leaf, *other.chain))
    store.create_document(
        CERTS,
        "oldcert",
        {
            "provisioner": "acme",
            "accountId": account_id,
            "orderId": "gone",
            "serial": other.serial,
            "identifiers": [{"type": "dns", "value": name}],
            "chains": [pem],
            "createdAt": ts(now),
        },
    )
    r = client.post(client.base + "/certificate/oldcert", None)
    assert r.status_code == 200 and r.data.decode() == pem
    der = other.leaf.public_bytes(serialization.Encoding.DER)
    r = client.post(client.directory["revokeCert"], {"certificate": b64(der)})
    assert r.status_code == 200, r.get_json()
    assert store.get_revocation(other.serial) is not None
