"""SQLite schema version 5: the inventory tables, and the in-place upgrade of a version 4 file."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from shared.inventory.base import Inventory
from shared.model import CertificateKind, CertificateRecord, ProvisionerRef
from shared.store.sqlite import SCHEMA_VERSION, SQLiteStore

T0 = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)


def _cert(serial: str) -> CertificateRecord:
    return CertificateRecord(
        serial=serial, authority_id="a", kind=CertificateKind.X509, der=b"\x30\x00",
        not_before=T0, not_after=T0 + dt.timedelta(days=1), provisioner=ProvisionerRef("p", "p", "JWK"),
        endpoint_id="ep", subject_key="ep", common_name="ep", sans=(), issued_at=T0,
    )


def _tables(db: Path) -> set[str]:
    raw = sqlite3.connect(db, isolation_level=None)
    try:
        return {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        raw.close()


def test_version_4_file_is_upgraded_to_5_keeping_its_records(tmp_path: Path) -> None:
    db = tmp_path / "v4.db"
    store = SQLiteStore(db)
    store.record_issuance(_cert("1"))
    store.close()
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("DROP TABLE inventories")
    raw.execute("DROP TABLE inventory_entries")
    raw.execute("UPDATE schema_version SET version = 4")
    raw.close()
    assert not {"inventories", "inventory_entries"} & _tables(db)  # what a version 4 file looks like

    store = SQLiteStore(db)
    assert store.schema_version() == SCHEMA_VERSION == 5
    assert store.get_certificate("1") == _cert("1")
    assert store.create_inventory(Inventory("hosts", "hosts", T0))
    assert store.put_inventory_entries("hosts", {"vm-1": {"workload": "billing"}})
    store.close()
    again = SQLiteStore(db)  # reopening changes nothing
    assert again.schema_version() == 5 and again.get_inventory_entry("hosts", "vm-1") == {"workload": "billing"}
    again.close()
