"""FirestoreStore behaviour beyond the shared contract, on the Firestore emulator.

Covers what is particular to the Firestore layout: the cost of an issuance in
document writes, events stored inside their fact's document (and listed
correctly across pages and `since` boundaries, checked against the memory
store), ids and field names Firestore would reject raw, TTL fields, batched
purges and the URL forms.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from firestore_grpc import BATCH_GET, COMMIT, PROJECT, RUN_QUERY, Faults, faulty_client

from shared.clock import FixedClock
from shared.errors import ConfigError
from shared.model import CertificateKind, CertificateRecord, Endpoint, Event, ProvisionerRef, Revocation, TokenClaim
from shared.retry import RetryPolicy
from shared.store import firestore_queries
from shared.store.firestore import FirestoreStore, from_url
from shared.store.memory import MemoryStore

pytestmark = pytest.mark.firestore

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def prefix(firestore_emulator_host: str) -> str:
    return f"s{uuid.uuid4().hex[:12]}_"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def store(prefix: str, faults: Faults) -> Iterator[FirestoreStore]:
    """A store whose RPCs are counted (no faults are injected here)."""
    s = FirestoreStore(prefix=prefix, client=faulty_client(faults), retry=RetryPolicy(deadline=20))
    yield s
    s._client.close()


def cert(serial: str, endpoint_id: str = "ep-1", issued_at: dt.datetime = T0) -> CertificateRecord:
    return CertificateRecord(
        serial=serial,
        authority_id="auth-1",
        kind=CertificateKind.X509,
        der=bytes(range(256)) * 4,
        not_before=issued_at,
        not_after=issued_at + 24 * HOUR,
        provisioner=ProvisionerRef(id="prov-1", name="admin", type="JWK"),
        endpoint_id=endpoint_id,
        subject_key="host.example.com",
        common_name="host.example.com",
        sans=("host.example.com",),
        issued_at=issued_at,
    )


def endpoint(endpoint_id: str = "ep-1") -> Endpoint:
    return Endpoint(
        id=endpoint_id,
        authority_id="auth-1",
        provisioner_id="prov-1",
        subject_key="host.example.com",
        name="host",
        created_at=T0,
    )


def event(event_id: str, time: dt.datetime = T0) -> Event:
    return Event(
        id=event_id,
        type="dev.cirrus.certificate.issued",
        source="cirrus-ca",
        subject=event_id,
        time=time,
        data={"serial": event_id, "nested": [[1, 2], {"a": None}]},
    )


def raw(store: FirestoreStore, collection: str, doc: str) -> dict[str, Any]:
    snap = store._client.collection(store.prefix + collection).document(doc).get()
    assert snap.exists
    return dict(snap.to_dict())


# --------------------------------------------------------------------------- cost per certificate


def test_new_endpoint_issuance_costs_four_writes_in_one_commit(store: FirestoreStore, faults: Faults) -> None:
    """/sign: token claim + certificate (with both events) + new endpoint + its month's usage, one commit.

    The reads usage needs (one batch of the claim, certificate and endpoint; one of the month
    documents; one query of the endpoint's active certificates) go in the same transaction.
    """
    store.record_issuance(
        cert("1001"),
        new_endpoint=endpoint(),
        events=[event("issued-1001"), event("endpoint-created-1")],
        claim=TokenClaim("jti", "token-1", T0 + HOUR),
    )
    assert len(faults.writes) == 4
    assert faults.delivered.count(COMMIT) == 1
    assert faults.delivered.count(BATCH_GET) == 2 and faults.delivered.count(RUN_QUERY) == 1


def test_renewal_costs_three_writes_in_one_commit(store: FirestoreStore, faults: Faults) -> None:
    """/renew with a token: claim + certificate (with its event) + the month's usage; the endpoint exists.

    The renewed certificate is still active, so its revocation is read too (one more batch).
    """
    store.record_issuance(cert("1"), new_endpoint=endpoint())
    faults.writes.clear()
    faults.delivered.clear()
    store.record_issuance(
        cert("2", issued_at=T0 + HOUR), events=[event("renewed-2")], claim=TokenClaim("jti", "token-2", T0 + HOUR)
    )
    assert len(faults.writes) == 3
    assert faults.delivered.count(COMMIT) == 1
    assert faults.delivered.count(BATCH_GET) == 3 and faults.delivered.count(RUN_QUERY) == 1
    assert [(r.endpoint_id, r.peak_active) for r in store.list_endpoint_months("2025-01")] == [("ep-1", 2)]


def test_issuance_into_an_endpoint_that_appeared_meanwhile(store: FirestoreStore, faults: Faults) -> None:
    """Grouping race: the endpoint already exists; the transaction sees it and writes the certificate alone."""
    store.record_issuance(cert("1"), new_endpoint=endpoint())
    faults.writes.clear()
    faults.delivered.clear()
    store.record_issuance(cert("2"), new_endpoint=dataclasses.replace(endpoint(), name="other"), events=[event("e2")])
    assert faults.delivered.count(COMMIT) == 1
    assert len(faults.writes) == 2  # the certificate and the month's usage; no endpoint
    assert [c.serial for c in store.list_certificates_by_endpoint("ep-1")] == ["1", "2"]
    assert store.get_endpoint("ep-1") == endpoint()


# --------------------------------------------------------------------------- events inside their documents


def test_events_of_one_issuance_straddling_since(store: FirestoreStore) -> None:
    store.record_issuance(cert("1"), events=[event("early", T0), event("late", T0 + 2 * HOUR)])
    store.append_events([event("middle", T0 + HOUR)])
    store.revoke(
        Revocation(serial="1", authority_id="auth-1", revoked_at=T0, not_after=T0 + HOUR),
        events=[event("revoked", T0 + 3 * HOUR)],
    )
    assert [e.id for e in store.list_events()] == ["early", "middle", "late", "revoked"]
    assert [e.id for e in store.list_events(since=T0 + HOUR)] == ["middle", "late", "revoked"]
    assert [e.id for e in store.list_events(since=T0 + HOUR + dt.timedelta(microseconds=1))] == [
        "late",
        "revoked",
    ]
    assert [e.id for e in store.list_events(since=T0 + HOUR, limit=2)] == ["middle", "late"]
    assert store.list_events()[0] == event("early", T0)  # nested arrays survive


def test_list_events_matches_the_memory_store_across_pages(store: FirestoreStore) -> None:
    """Random events spread over many documents of all three kinds, read in pages."""
    rng = random.Random(1234)
    memory = MemoryStore(clock=FixedClock(T0))

    def t() -> dt.datetime:
        return T0 + dt.timedelta(minutes=rng.randrange(0, 300))

    standalone = [event(f"s{i:03d}", t()) for i in range(120)]
    store.append_events(standalone)
    memory.append_events(standalone)
    for n in range(70):
        evs = [event(f"c{n:03d}-{k}", t()) for k in range(rng.randrange(0, 4))]
        store.record_issuance(cert(str(5000 + n)), events=evs)
        memory.record_issuance(cert(str(5000 + n)), events=evs)
    for n in range(20):
        evs = [event(f"r{n:03d}", t())]
        rev = Revocation(serial=str(n), authority_id="auth-1", revoked_at=T0, not_after=T0 + HOUR)
        store.revoke(rev, events=evs)
        memory.revoke(rev, events=evs)

    for since in [None, T0, T0 + 37 * dt.timedelta(minutes=1), T0 + 4 * HOUR, T0 + 6 * HOUR]:
        for limit in [1, 7, 50, 100, 1000]:
            got = [e.id for e in store.list_events(since=since, limit=limit)]
            want = [e.id for e in memory.list_events(since=since, limit=limit)]
            assert got == want, (since, limit)


# --------------------------------------------------------------------------- ids, fields, TTL


@pytest.mark.parametrize("doc_id", ["a/b", "~", "~2F", "..", ".", "__x__", "", "x" * 2000, "ü/ß"])
def test_ids_firestore_rejects_raw_still_work(store: FirestoreStore, doc_id: str) -> None:
    assert store.create_document("acme/orders", doc_id, {"k": "v"})
    assert store.create_document("acme/orders", doc_id, {"k": "v"}) is False
    assert store.get_document("acme/orders", doc_id) == ({"k": "v"}, 1)
    assert store.update_document("acme/orders", doc_id, {"k": "w"}, expected_version=1)
    found = store.find_documents("acme/orders", "k", "w")
    if len(doc_id) < 1000:  # an over-long id is stored hashed and listed that way
        assert [i for i, _, _ in found] == [doc_id]
    else:
        assert len(found) == 1
    assert store.claim(doc_id, doc_id, T0 + HOUR) is True
    assert store.claim(doc_id, doc_id, T0 + HOUR) is False
    assert store.next_value(doc_id) == 1


def test_serials_and_endpoint_ids_with_odd_characters(store: FirestoreStore) -> None:
    store.record_issuance(cert("a/b", "ep/1"), new_endpoint=endpoint("ep/1"))
    assert store.get_certificate("a/b") == cert("a/b", "ep/1")
    assert store.get_endpoint("ep/1") == endpoint("ep/1")
    assert [e.id for e in store.list_endpoints()] == ["ep/1"]


@pytest.mark.parametrize("field", ["a.b", "`x`", "__name__", "", "with space", "ü"])
def test_find_documents_with_odd_field_names(store: FirestoreStore, field: str) -> None:
    store.create_document("c", "d1", {field: "hit", "other": "x"})
    store.create_document("c", "d2", {field: "miss"})
    assert [i for i, _, _ in store.find_documents("c", field, "hit")] == ["d1"]
    # Updates rewrite the index map with the same odd keys.
    assert store.update_document("c", "d2", {field: "hit", "x.y": "z"}, expected_version=1)
    assert [i for i, _, _ in store.find_documents("c", field, "hit")] == ["d1", "d2"]
    assert [i for i, _, _ in store.find_documents("c", "x.y", "z")] == ["d2"]
    assert store.find_documents("c", field, "miss") == []


def test_expiring_documents_carry_a_ttl_timestamp(store: FirestoreStore) -> None:
    store.claim("nonce", "n1", T0 + HOUR)
    claims = list(store._client.collection(store.prefix + "claims").stream())
    assert len(claims) == 1
    assert claims[0].get("expireAt") == T0 + HOUR  # a Firestore timestamp, as TTL requires

    store.create_document("nonces", "n2", {"a": "b"}, expires_at=T0 + 2 * HOUR)
    store.create_document("orders", "o1", {"a": "b"})
    store.update_document("nonces", "n2", {"a": "c"}, expected_version=1)
    items = store._items("nonces").document("n2").get()
    assert items.get("expireAt") == T0 + 2 * HOUR  # kept across updates
    assert "expireAt" not in store._items("orders").document("o1").get().to_dict()


def test_purge_deletes_in_batches(store: FirestoreStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firestore_queries, "_PURGE_BATCH", 3)
    for i in range(10):
        store.claim("jti", f"old-{i}", T0 + dt.timedelta(minutes=i))
    store.claim("jti", "young", T0 + 2 * HOUR)
    assert store.purge_expired(T0 + HOUR) == 10
    assert store.claim("jti", "old-0", T0 + HOUR) is True
    assert store.claim("jti", "young", T0 + HOUR) is False


def test_certificate_der_is_stored_as_bytes(store: FirestoreStore) -> None:
    store.record_issuance(cert("9"))
    doc = raw(store, "certificates", "9")
    assert isinstance(doc["der"], bytes) and doc["der"] == cert("9").der
    assert "ev" not in doc  # no events, no event fields: it never shows up in list_events


# --------------------------------------------------------------------------- URLs


def test_from_url_forms(firestore_emulator_host: str) -> None:
    clock = FixedClock(T0)
    for url, project, prefix in [
        (f"firestore:projects/{PROJECT}/databases/(default)?prefix=u_", PROJECT, "u_"),
        (f"firestore:{PROJECT}", PROJECT, ""),
        (f"firestore:{PROJECT}/(default)?deadline=3", PROJECT, ""),
    ]:
        s = from_url(url, clock=clock)
        try:
            assert s._client.project == project and s.prefix == prefix
            assert s.get_certificate("nothing") is None
            assert s.shards == 16  # firestore_shards.DEFAULT_SHARDS
        finally:
            s.close()
    five = from_url(f"firestore:{PROJECT}?shards=5", clock=clock)
    assert five.shards == 5
    five.close()
    for bad in [
        "firestore://host/p",
        "firestore:a/b/c",
        "firestore:projects/p/x/y",
        "firestore:p?colour=blue",
        "firestore:p?deadline=-1",
        "firestore:p?deadline=soon",
        "firestore:p?shards=0",
        "firestore:p?shards=65",
        "firestore:p?shards=four",
        "sqlite:p",
    ]:
        with pytest.raises(ConfigError):
            from_url(bad, clock=clock)
