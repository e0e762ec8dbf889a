"""The dashboard's keyset paging and sign-in records over every store backend (the contract suite's `store`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.dashboard import listing, session
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
PROV = ProvisionerRef(id="p1", name="admin", type="JWK")


def _add(store: Any, i: int, not_after: dt.datetime, provisioner: str = "p1") -> None:
    name = f"host-{i:03d}.example.com"
    endpoint = Endpoint(id=f"ep-{i:03d}", authority_id="ca", provisioner_id=provisioner, subject_key=name,
                        name=name, created_at=NOW)
    store.record_issuance(CertificateRecord(
        serial=str(10**20 + i), authority_id="ca", kind=CertificateKind.X509, der=b"\x30\x00", not_before=NOW,
        not_after=not_after, provisioner=PROV, endpoint_id=endpoint.id, subject_key=name, common_name=name,
        sans=(name,), issued_at=NOW,
    ), new_endpoint=endpoint)


def test_expiry_pages_cover_many_certificates_expiring_in_the_same_instant(store: Any) -> None:
    same = NOW + dt.timedelta(days=1)
    for i in range(12):
        _add(store, i, same)
    for i in range(12, 15):
        _add(store, i, same + dt.timedelta(seconds=i))
    seen: list[str] = []
    start, after = NOW, ""
    for _ in range(20):
        rows, cursor = listing.list_by_expiry(store, authority_id="ca", start=start, after_serial=after, limit=2)
        seen += [r[1] for r in rows]
        if cursor is None:
            break
        start, after = cursor
    assert seen == [str(10**20 + i) for i in range(15)]


def test_filtered_endpoint_pages_resume_where_the_scan_stopped(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "SCAN_LIMIT", 5)
    monkeypatch.setattr(listing, "BATCH", 3)
    for i in range(20):
        _add(store, i, NOW + dt.timedelta(days=1), provisioner="p2" if i % 4 == 0 else "p1")
    found: list[str] = []
    cursor, requests = "", 0
    while True:
        rows, cursor = listing.list_endpoints(store, authority_id="ca", now=NOW, after=cursor, provisioner_id="p2")
        requests += 1
        found += [r.endpoint.id for r in rows]
        assert all(r.status == "active" for r in rows)
        if not cursor:
            break
    assert found == ["ep-000", "ep-004", "ep-008", "ep-012", "ep-016"]
    assert requests >= 4  # no request read more than its bound of 5 (+ the rest of a batch)


def test_session_key_is_shared_and_admin_tokens_expire(store: Any) -> None:
    key = session.session_key(store)
    assert len(key) == 32 and session.session_key(store) == key
    token = session.issue_admin_token(store, NOW, dt.timedelta(hours=1))
    assert session.check_admin_token(store, token, NOW + dt.timedelta(minutes=59))
    assert not session.check_admin_token(store, token, NOW + dt.timedelta(hours=1))
    assert not session.check_admin_token(store, token[:-1] + ("A" if token[-1] != "A" else "B"), NOW)
