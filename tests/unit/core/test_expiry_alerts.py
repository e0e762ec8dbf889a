"""Expiry alerts: once per certificate, only for an endpoint's newest, unrevoked certificate."""

from __future__ import annotations

import datetime as dt

from shared.alerts import AlertStores, run_expiry_alerts
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef, Revocation
from shared.store.memory import MemoryStore

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def record(store: MemoryStore, serial: str, endpoint_id: str, *, issued: dt.datetime, not_after: dt.datetime, new: bool) -> None:
    rec = CertificateRecord(
        serial=serial, authority_id="a", kind=CertificateKind.X509, der=b"\x30\x00", not_before=issued,
        not_after=not_after, provisioner=ProvisionerRef("p", "p", "JWK"), endpoint_id=endpoint_id,
        subject_key="k", common_name="n", sans=("n",), issued_at=issued,
    )
    ep = Endpoint(id=endpoint_id, authority_id="a", provisioner_id="p", subject_key="k", name="n", created_at=issued)
    store.record_issuance(rec, new_endpoint=ep if new else None)


def stores(store: MemoryStore) -> AlertStores:
    return AlertStores(expiring=store, certificates=store, revocations=store, ledger=store, events=store)


def test_expiring_then_expired_once_each() -> None:
    store = MemoryStore()
    record(store, "1", "ep-1", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    # Renewed: the old certificate of ep-2 expires soon but a newer one exists.
    record(store, "2", "ep-2", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    record(store, "3", "ep-2", issued=T0 + dt.timedelta(hours=16), not_after=T0 + dt.timedelta(hours=40), new=False)
    # Revoked: no alert.
    record(store, "4", "ep-3", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    store.revoke(Revocation(serial="4", authority_id="a", revoked_at=T0, not_after=T0 + dt.timedelta(hours=24)))

    at = T0 + dt.timedelta(hours=17)  # 7 h left: inside the 8 h window
    raised = run_expiry_alerts(stores(store), authority_id="a", now=at)
    assert [(e.type, e.subject, e.data["serial"]) for e in raised] == [("dev.cirrus.endpoint.expiring", "ep-1", "1")]
    assert run_expiry_alerts(stores(store), authority_id="a", now=at + dt.timedelta(minutes=5)) == []  # once

    after = T0 + dt.timedelta(hours=25)
    raised = run_expiry_alerts(stores(store), authority_id="a", now=after)
    assert [(e.type, e.subject) for e in raised] == [("dev.cirrus.endpoint.expired", "ep-1")]
    assert run_expiry_alerts(stores(store), authority_id="a", now=after) == []
    logged = [e.type for e in store.list_events(limit=100)]
    assert logged.count("dev.cirrus.endpoint.expiring") == 1 and logged.count("dev.cirrus.endpoint.expired") == 1
