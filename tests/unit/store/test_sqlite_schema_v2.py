"""SQLite schema versions 2 and 3 and WAL checkpointing: the in-place upgrades of version 1 and 2
files, the expression indexes behind `find_documents`, and checkpoints kept off the request path."""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.clock import FixedClock
from shared.errors import BackendError
from shared.model import (
    CertificateKind,
    CertificateRecord,
    Endpoint,
    Event,
    ProvisionerRef,
    TokenClaim,
)
from shared.store.sqlite import _MIGRATE_1_TO_2, SCHEMA_VERSION, SQLiteStore

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
US = 1_735_689_600_000_000  # T0 in microseconds
HOUR = dt.timedelta(hours=1)

# The version 1 schema exactly as releases before version 2 created it.
V1_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS used_tokens (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS used_tokens_by_expiry ON used_tokens (expires_at)",
    """CREATE TABLE IF NOT EXISTS certificates (
        serial TEXT PRIMARY KEY NOT NULL,
        authority_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        der BLOB NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        provisioner_id TEXT NOT NULL,
        provisioner_name TEXT NOT NULL,
        provisioner_type TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        common_name TEXT NOT NULL,
        sans TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        renewed_from TEXT,
        operation TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS certificates_by_endpoint
        ON certificates (endpoint_id, issued_at, serial)""",
    # The published serial index reads new issuances by (issued_at, serial) cursor.
    """CREATE INDEX IF NOT EXISTS certificates_by_authority_issued
        ON certificates (authority_id, issued_at, serial)""",
    # Expiry alerts read certificates by expiry window.
    """CREATE INDEX IF NOT EXISTS certificates_by_authority_expiry
        ON certificates (authority_id, not_after, serial)""",
    """CREATE TABLE IF NOT EXISTS endpoints (
        id TEXT PRIMARY KEY NOT NULL,
        authority_id TEXT NOT NULL,
        provisioner_id TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS endpoints_by_authority ON endpoints (authority_id, id)",
    """CREATE TABLE IF NOT EXISTS revocations (
        serial TEXT PRIMARY KEY NOT NULL,
        authority_id TEXT NOT NULL,
        revoked_at INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        reason_code INTEGER NOT NULL,
        reason TEXT NOT NULL,
        provisioner_id TEXT NOT NULL,
        mtls INTEGER NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS revocations_by_authority_expiry
        ON revocations (authority_id, not_after)""",
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY NOT NULL,
        type TEXT NOT NULL,
        source TEXT NOT NULL,
        subject TEXT NOT NULL,
        time INTEGER NOT NULL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_time ON events (time, id)",
    """CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS documents (
        collection TEXT NOT NULL,
        id TEXT NOT NULL,
        data TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (collection, id)
    )""",
    """CREATE INDEX IF NOT EXISTS documents_by_expiry
        ON documents (expires_at) WHERE expires_at IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS document_fields (
        collection TEXT NOT NULL,
        field TEXT NOT NULL,
        value TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        PRIMARY KEY (collection, field, value, doc_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX IF NOT EXISTS document_fields_by_doc
        ON document_fields (collection, doc_id)""",
)


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def _v1_file(db: Path) -> None:
    """A version 1 database with a row in every table, written without the current code."""
    conn = _raw(db)
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)")
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 1)")
    conn.execute("INSERT INTO used_tokens VALUES ('jti', 'used', ?)", (US + 3600_000_000,))
    conn.execute(
        "INSERT INTO certificates VALUES ('7', 'a', 'x509', x'3000', ?, ?, 'p', 'n', 'JWK', 'ep', "
        "'s', 'host', '[\"host\"]', ?, NULL, 'sign')",
        (US, US + 3600_000_000, US),
    )
    conn.execute("INSERT INTO endpoints VALUES ('ep', 'a', 'p', 's', 'host', ?)", (US,))
    conn.execute("INSERT INTO revocations VALUES ('7', 'a', ?, ?, 1, 'key', 'p', 0)", (US, US + 1))
    conn.execute("INSERT INTO events VALUES ('e2', 't', 'src', '7', ?, '{\"n\":2}')", (US + 2,))
    conn.execute("INSERT INTO events VALUES ('e1', 't', 'src', '7', ?, '{\"n\":1}')", (US + 1,))
    conn.execute("INSERT INTO counters VALUES ('crl', 41)")
    conn.execute(
        "INSERT INTO documents VALUES ('acme_orders', 'o1', '{\"accountId\":\"acc\",\"status\":\"valid\"}', 3, NULL)"
    )
    conn.execute("INSERT INTO document_fields VALUES ('acme_orders', 'accountId', 'acc', 'o1')")
    conn.execute("INSERT INTO document_fields VALUES ('acme_orders', 'status', 'valid', 'o1')")
    conn.close()


def _event(event_id: str, when: dt.datetime) -> Event:
    return Event(id=event_id, type="t", source="src", subject="7", time=when, data={"n": 9})


def test_version_1_file_is_upgraded_in_place_and_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    _v1_file(db)
    store = SQLiteStore(db, clock=FixedClock(T0))
    assert store.schema_version() == SCHEMA_VERSION
    cert = store.get_certificate("7")
    assert cert is not None and cert.der == b"\x30\x00" and cert.sans == ("host",)
    assert [c.serial for c in store.list_certificates_by_endpoint("ep")] == ["7"]
    assert store.get_endpoint("ep") is not None
    assert store.get_revocation("7") is not None
    assert [(e.id, e.data) for e in store.list_events()] == [("e1", {"n": 1}), ("e2", {"n": 2})]
    assert store.claim("jti", "used", T0 + HOUR) is False
    assert store.next_value("crl") == 42
    assert store.find_documents("acme_orders", "accountId", "acc") == [
        ("o1", {"accountId": "acc", "status": "valid"}, 3)
    ]
    assert store.update_document("acme_orders", "o1", {"accountId": "acc2"}, expected_version=3)
    assert store.find_documents("acme_orders", "accountId", "acc") == []
    # The migrated event log still ignores a retried event and orders by (time, id).
    store.append_events([_event("e0", T0), _event("e1", T0 + dt.timedelta(microseconds=1))])
    assert [e.id for e in store.list_events()] == ["e0", "e1", "e2"]
    store.close()

    raw = _raw(db)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "document_fields" not in tables and "events_v2" not in tables
    indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'events'")}
    assert indexes == {"events", "events_by_time"}  # no autoindex on id any more
    raw.close()
    again = SQLiteStore(db)  # reopening an upgraded file changes nothing
    assert again.schema_version() == SCHEMA_VERSION and len(again.list_events()) == 3
    again.close()


def test_version_2_file_gets_digest_keyed_used_tokens_and_keeps_its_claims(tmp_path: Path) -> None:
    db = tmp_path / "v2.db"
    _v1_file(db)
    raw = _raw(db)
    raw.execute("BEGIN")
    for statement in _MIGRATE_1_TO_2:  # what a version 2 release did to the file, nothing newer
        raw.execute(statement)
    raw.execute("COMMIT")
    raw.execute("INSERT INTO used_tokens VALUES ('ott:p', 'jti-2', ?)", (US - 1,))  # already expired at T0
    assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == 2
    raw.close()

    store = SQLiteStore(db, clock=FixedClock(T0))
    assert store.schema_version() == SCHEMA_VERSION
    assert store.claim("jti", "used", T0 + HOUR) is False  # claims made before the upgrade still hold
    assert store.claim("ott:p", "jti-2", T0 + HOUR) is False
    assert store.claim("ott:p", "jti-3", T0 + HOUR) is True
    assert store.claim("ott:p", "jti-3", T0 + HOUR) is False
    # The digest is length-prefixed: a namespace/key split elsewhere is another claim.
    assert store.claim("ott:pj", "ti-3", T0 + HOUR) is True
    assert store.purge_expired(T0) == 1
    assert store.claim("ott:p", "jti-2", T0 + HOUR) is True  # purged, so free again
    store.close()

    raw = _raw(db)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "used_tokens_v3" not in tables
    indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'used_tokens'")}
    assert indexes == {"used_tokens", "used_tokens_by_digest", "used_tokens_by_expiry"}
    columns = [r[1] for r in raw.execute("PRAGMA table_info(used_tokens)")]
    assert columns == ["digest", "namespace", "key", "expires_at"]
    raw.close()


def test_failed_upgrade_leaves_the_version_1_file_untouched(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    _v1_file(db)
    raw = _raw(db)
    raw.execute("CREATE TABLE events_v2 (x INTEGER)")  # in the way: the copy step fails
    raw.close()
    with pytest.raises(BackendError, match="no column named id"):
        SQLiteStore(db)
    raw = _raw(db)
    assert raw.execute("SELECT version FROM schema_version").fetchone()[0] == 1
    assert raw.execute("SELECT COUNT(*) FROM document_fields").fetchone()[0] == 2
    raw.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.db", clock=FixedClock(T0))
    yield s
    s.close()


def _plan(store: SQLiteStore, sql: str, params: tuple[object, ...]) -> str:
    raw = _raw(Path(store.path))
    try:
        return " ".join(str(r) for r in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        raw.close()


def test_find_documents_is_answered_from_a_partial_expression_index(store: SQLiteStore) -> None:
    store.create_document("orders", "o2", {"accountId": "acc", "status": "pending"})
    store.create_document("orders", "o1", {"accountId": "acc"})
    store.create_document("authzs", "z1", {"accountId": "acc"})
    assert [i for i, _, _ in store.find_documents("orders", "accountId", "acc")] == ["o1", "o2"]
    sql = store._find_sql[("orders", "accountId")]
    plan = _plan(store, sql, ("acc", 10))
    assert "USING INDEX documents_by_field_" in plan and "TEMP B-TREE" not in plan, plan
    # The index holds only the searched collection's rows, and follows later writes.
    raw = _raw(Path(store.path))
    (name,) = raw.execute("SELECT name FROM sqlite_master WHERE name LIKE 'documents_by_field_%'").fetchone()
    assert raw.execute(f"SELECT COUNT(*) FROM documents INDEXED BY {name} WHERE collection = 'orders'").fetchone()[0] == 2
    raw.close()
    store.create_document("orders", "o3", {"accountId": "acc"})
    assert store.update_document("orders", "o1", {"accountId": "other"}, expected_version=1)
    assert [i for i, _, _ in store.find_documents("orders", "accountId", "acc")] == ["o2", "o3"]
    # Another store on the same file (another process) finds the index instead of making one.
    other = SQLiteStore(store.path)
    assert [i for i, _, _ in other.find_documents("orders", "accountId", "other")] == ["o1"]
    other.close()


def test_find_documents_counts_only_string_matches_against_the_limit(store: SQLiteStore) -> None:
    store.create_document("c", "a", {"f": {"x": 1}})  # json_extract gives the text {"x":1}
    store.create_document("c", "b", {"f": 5})
    store.create_document("c", "c", {"f": '{"x":1}'})
    store.create_document("c", "d", {"f": "5"})
    assert [i for i, _, _ in store.find_documents("c", "f", '{"x":1}', limit=1)] == ["c"]
    assert [i for i, _, _ in store.find_documents("c", "f", "5", limit=1)] == ["d"]


@pytest.mark.parametrize("field", ['quo"te', "dot.ted", "it's", "[0]", "sp ace", "é"])
def test_find_documents_with_awkward_field_and_collection_names(store: SQLiteStore, field: str) -> None:
    store.create_document("col'l", "x", {field: "v", "other": "v"})
    store.create_document("col'l", "y", {field: "w"})
    store.create_document("coll", "z", {field: "v"})
    assert [i for i, _, _ in store.find_documents("col'l", field, "v")] == ["x"]


def _issue(store: SQLiteStore, i: int) -> None:
    serial = str(1000 + i)
    store.record_issuance(
        CertificateRecord(
            serial=serial,
            authority_id="a",
            kind=CertificateKind.X509,
            der=bytes(800),
            not_before=T0,
            not_after=T0 + HOUR,
            provisioner=ProvisionerRef(id="p", name="n", type="JWK"),
            endpoint_id=f"ep{i}",
            subject_key="s",
            common_name="s",
            sans=("s",),
            issued_at=T0,
        ),
        new_endpoint=Endpoint(
            id=f"ep{i}", authority_id="a", provisioner_id="p", subject_key="s", name="s", created_at=T0
        ),
        events=[_event(f"ev{i}", T0)],
        claim=TokenClaim(namespace="jti", key=serial, expires_at=T0 + HOUR),
    )


def test_requests_leave_checkpointing_to_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = SQLiteStore(db)
    size = db.stat().st_size
    for i in range(300):  # ~3,000 WAL pages: well past SQLite's default 1,000-page checkpoint
        _issue(store, i)
    assert db.stat().st_size == size  # nothing was copied into the database file
    frames, done = store.checkpoint()
    assert frames > 1000 and done == frames
    assert db.stat().st_size > size + 300 * 800
    assert store.checkpoint() == (frames, frames)  # nothing new: nothing to do
    _issue(store, 300)  # the next writer restarts the WAL from its beginning
    frames, done = store.checkpoint()
    assert 0 < frames < 50 and done == frames
    store.close()


def test_safety_valve_checkpoints_without_a_background_thread(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    store = SQLiteStore(db, wal_autocheckpoint_pages=200)
    size = db.stat().st_size
    for i in range(100):
        _issue(store, i)
    assert db.stat().st_size > size
    store.close()


def test_checkpointing_bounds_the_wal_under_continuous_writes(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store = SQLiteStore(db, wal_autocheckpoint_pages=1_000_000)  # only checkpoint() copies
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set():
            _issue(store, written[0])
            written[0] += 1

    thread = threading.Thread(target=writer)
    thread.start()
    samples: list[int] = []
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            samples.append(store.checkpoint()[0])
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    frames, done = store.checkpoint()
    assert written[0] > 200 and done == frames
    # Unchecked, the WAL only grows; checkpoint() makes writers restart it from the beginning.
    restarts = sum(1 for a, b in itertools.pairwise(samples) if b < a)
    assert restarts >= 3, samples
    store.close()


def test_cirrus_up_checkpoints_in_the_background(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from shared.cli.up import checkpoint_until

    db = tmp_path / "up.db"
    store = SQLiteStore(db)
    for i in range(100):
        _issue(store, i)
    size = db.stat().st_size
    stop = threading.Event()
    settings: Any = SimpleNamespace(store=f"sqlite:{db}")
    thread = threading.Thread(target=checkpoint_until, args=(stop, settings))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while db.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert db.stat().st_size > size and not thread.is_alive()
    # Other stores have no WAL: the loop returns at once.
    checkpoint_until(threading.Event(), SimpleNamespace(store="memory:"))  # type: ignore[arg-type]
    store.close()
