"""SQLite schema version 4: endpoint-month usage records, and the in-place upgrade of a version 3
file that builds them from the certificates and revocations it already holds."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from shared.errors import BackendError
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef, Revocation
from shared.store.sqlite import SCHEMA_VERSION, SQLiteStore

T0 = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _cert(serial: str, endpoint_id: str, issued: dt.datetime, days: int) -> CertificateRecord:
    return CertificateRecord(
        serial=serial,
        authority_id="a",
        kind=CertificateKind.X509,
        der=b"\x30\x00",
        not_before=issued - dt.timedelta(minutes=1),
        not_after=issued + days * DAY,
        provisioner=ProvisionerRef("p", "p", "JWK"),
        endpoint_id=endpoint_id,
        subject_key=endpoint_id,
        common_name=endpoint_id,
        sans=(),
        issued_at=issued,
    )


def _usage(store: SQLiteStore) -> dict[str, list[tuple[str, str, int]]]:
    return {
        m: [(r.endpoint_id, r.name, r.peak_active) for r in store.list_endpoint_months(m)]
        for m in ("2026-01", "2026-02", "2026-03")
    }


def _v3_file(db: Path) -> dict[str, list[tuple[str, str, int]]]:
    """A store written by this code, then taken back to version 3 (which had neither the table
    nor the index; nothing else changed). Returns the records the live writes kept."""
    store = SQLiteStore(db)
    store.record_issuance(
        _cert("1", "ep-1", T0, 30),
        new_endpoint=Endpoint("ep-1", "a", "p", "ep-1", "device one", T0),
    )
    for i in range(4):  # four at once in February -> peak 4
        store.record_issuance(_cert(f"2{i}", "ep-1", T0 + 12 * DAY, 10))
    store.record_issuance(_cert("3", "ep-2", T0, 60))
    store.revoke(Revocation(serial="3", authority_id="a", revoked_at=T0 + 5 * DAY, not_after=T0 + 60 * DAY))
    kept = _usage(store)
    store.close()
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("DROP TABLE endpoint_months")
    raw.execute("DROP INDEX certificates_by_endpoint_expiry")
    raw.execute("UPDATE schema_version SET version = 3")
    raw.close()
    return kept


def test_version_3_file_is_upgraded_with_the_records_its_certificates_imply(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    kept = _v3_file(db)
    # Worked by hand: ep-1 January (one cert, Jan 20-31) peak 1; February four renewals
    # Feb 1-11 alongside the first (to Feb 19): peak 5; ep-2 revoked Jan 25: January only.
    assert kept == {
        "2026-01": [("ep-1", "device one", 1), ("ep-2", "", 1)],
        "2026-02": [("ep-1", "device one", 5)],
        "2026-03": [],
    }
    store = SQLiteStore(db)
    assert store.schema_version() == SCHEMA_VERSION == 5
    assert _usage(store) == kept
    # and the upgraded file keeps them up to date
    store.record_issuance(_cert("4", "ep-2", T0 + 40 * DAY, 3))
    assert [(r.endpoint_id, r.peak_active) for r in store.list_endpoint_months("2026-03")] == [("ep-2", 1)]
    store.close()
    again = SQLiteStore(db)  # reopening changes nothing
    assert again.schema_version() == 5 and len(again.list_endpoint_months("2026-02")) == 1
    again.close()


def test_failed_upgrade_leaves_the_version_3_file_untouched(tmp_path: Path) -> None:
    db = tmp_path / "v3.db"
    _v3_file(db)
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("CREATE TABLE endpoint_months (x INTEGER)")  # in the way: the backfill fails
    raw.close()
    with pytest.raises(BackendError, match="create schema failed"):
        SQLiteStore(db)
    raw = sqlite3.connect(db, isolation_level=None)
    assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == 3
    assert (
        raw.execute("SELECT name FROM sqlite_master WHERE name = 'certificates_by_endpoint_expiry'").fetchone() is None
    )
    raw.close()
