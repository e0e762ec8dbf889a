"""An authenticated ACME request reads its account and the document its URL names in one store round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import ACMETestClient, TestCA, build_server, provisioner, wsgi_app


class CountingStore(MemoryStore):
    """The in-memory store, counting document reads (single and batched)."""

    def __init__(self) -> None:
        super().__init__()
        self.single: list[tuple[str, str]] = []
        self.batched: list[list[tuple[str, str]]] = []

    def get_document(self, collection: str, doc_id: str) -> Any:
        self.single.append((collection, doc_id))
        return super().get_document(collection, doc_id)

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> Any:
        self.batched.append(list(keys))
        return [MemoryStore.get_document(self, c, d) for c, d in keys]


def test_order_authz_and_certificate_reads_come_with_the_account(responder) -> None:  # type: ignore[no-untyped-def]
    store = CountingStore()
    client = ACMETestClient(wsgi_app(build_server(store, TestCA(store), [provisioner("acme", http01Port=responder.port)])))
    client.register()
    r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    order_url, authz_url = r.headers["Location"], r.get_json()["authorizations"][0]
    account_id = client.kid.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    for url, doc in ((order_url, order_url.rsplit("/", 1)[-1]), (authz_url, order_url.rsplit("/", 1)[-1])):
        store.single.clear()
        store.batched.clear()
        assert client.post(url, None).status_code == 200
        assert store.batched == [[("acme_accounts", account_id), ("acme_orders", doc)]]
        assert store.single == []  # nothing read twice
    # A missing order is still a 404 (the prefetch found nothing), and a foreign one too.
    assert client.post(order_url + "x", None).status_code == 404
