"""newOrder and finalize spend their nonce inside their first document write: replays still get badNonce.

The nonce claim moved from its own store write into the request's first
document write, so these tests replay the exact same signed request (same
nonce) and check that the replay is refused and had no effect: no second
order, no second rate-limit count, no second certificate, whatever the
handler would otherwise have answered.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.acme.ratelimit import COLLECTION as RATE
from shared.acme.repo import ORDERS
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    ACMETestClient,
    HTTP01Responder,
    TestCA,
    b64,
    build_server,
    make_csr,
    make_jws,
    provisioner,
    wsgi_app,
)

P = "urn:ietf:params:acme:error:"


def _client(store: MemoryStore, ca: TestCA, responder: HTTP01Responder, **cirrus: Any) -> ACMETestClient:
    app = wsgi_app(build_server(store, ca, [provisioner("acme", http01Port=responder.port, **cirrus)]))
    client = ACMETestClient(app)
    assert client.register().status_code == 201
    return client


def _replay(client: ACMETestClient, url: str, payload: Any) -> tuple[Any, Any]:
    """The same signed request twice."""
    assert client.kid is not None
    body = make_jws(client.key, url, payload, nonce=client.nonce(), kid=client.kid)
    return client.raw(url, body), client.raw(url, body)


def _orders(store: MemoryStore, client: ACMETestClient) -> int:
    assert client.kid is not None
    return len(store.find_documents(ORDERS, "accountId", client.kid.rsplit("/", 1)[-1]))


@pytest.mark.parametrize("per_minute", [300, 0], ids=["rate-limited", "unlimited"])
def test_replayed_new_order_is_bad_nonce_and_creates_nothing(
    store: MemoryStore, ca: TestCA, responder: HTTP01Responder, per_minute: int
) -> None:
    client = _client(store, ca, responder, ordersPerMinute=per_minute)
    first, again = _replay(
        client, client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}
    )
    assert first.status_code == 201, first.get_json()
    assert again.status_code == 400 and again.get_json()["type"] == P + "badNonce"
    assert again.headers.get("Replay-Nonce")
    assert _orders(store, client) == 1
    windows = [d for (coll, _), d in store._documents.items() if coll == RATE]
    assert [w[0] for w in windows] == (['{"n":1}'] if per_minute else [])


def test_refused_new_order_still_spends_its_nonce(store: MemoryStore, ca: TestCA, responder: HTTP01Responder) -> None:
    client = _client(store, ca, responder, ordersPerMinute=0)
    first, again = _replay(client, client.directory["newOrder"], {"identifiers": []})
    assert first.get_json()["type"] == P + "malformed"
    assert again.get_json()["type"] == P + "badNonce"


def _ready_order(client: ACMETestClient, responder: HTTP01Responder) -> dict[str, Any]:
    r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    order: dict[str, Any] = r.get_json()
    authz = client.post(order["authorizations"][0], None).get_json()
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
    responder.tokens[ch["token"]] = client.key_authorization(ch["token"])
    assert client.post(ch["url"], {}).get_json()["status"] == "valid"
    return order


def test_replayed_finalize_is_bad_nonce_and_issues_once(
    store: MemoryStore, ca: TestCA, responder: HTTP01Responder
) -> None:
    client = _client(store, ca, responder)
    order = _ready_order(client, responder)
    _, csr = make_csr(["127.0.0.1"])
    first, again = _replay(client, order["finalize"], {"csr": b64(csr)})
    assert first.status_code == 200 and first.get_json()["status"] == "valid", first.get_json()
    # Unreplayed, this request would now get orderNotReady; the spent nonce comes first.
    assert again.status_code == 400 and again.get_json()["type"] == P + "badNonce"
    assert len(ca.issued) == 1


def test_finalize_refused_by_the_handler_spends_its_nonce(
    store: MemoryStore, ca: TestCA, responder: HTTP01Responder
) -> None:
    client = _client(store, ca, responder)
    r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    _, csr = make_csr(["127.0.0.1"])
    first, again = _replay(client, r.get_json()["finalize"], {"csr": b64(csr)})
    assert first.get_json()["type"] == P + "orderNotReady"
    assert again.get_json()["type"] == P + "badNonce"
    # The order was not touched by either request.
    assert client.post(r.headers["Location"], None).get_json()["status"] == "pending"
    assert ca.issued == []
