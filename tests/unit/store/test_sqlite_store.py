"""SQLite-specific properties the contract suite cannot see: pragmas, schema,
indexes, storage types, lock timeouts, the connection pool and fork safety."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.clock import FixedClock
from shared.errors import BackendError, ConfigError
from shared.model import CertificateKind, CertificateRecord, Event, ProvisionerRef, Revocation
from shared.store.sqlite import SCHEMA_VERSION, SQLiteStore

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _cert(serial: str) -> CertificateRecord:
    return CertificateRecord(
        serial=serial,
        authority_id="a",
        kind=CertificateKind.X509,
        der=b"\x30\x00der",
        not_before=T0,
        not_after=T0 + HOUR,
        provisioner=ProvisionerRef(id="p", name="n", type="JWK"),
        endpoint_id="ep",
        subject_key="s",
        common_name="s",
        sans=("s",),
        issued_at=T0,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ca.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db, clock=FixedClock(T0))
    yield s
    s.close()


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def test_wal_mode_and_pragmas(store: SQLiteStore, db: Path) -> None:
    assert _raw(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persisted in file
    conn = store._acquire()
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    finally:
        store._release(conn)


def test_schema_is_versioned_and_reopen_is_idempotent(db: Path) -> None:
    first = SQLiteStore(db)
    first.record_issuance(_cert("1"))
    assert first.schema_version() == SCHEMA_VERSION == 5
    first.close()
    second = SQLiteStore(db)
    assert second.get_certificate("1") == _cert("1")
    assert second.schema_version() == 5
    assert _raw(db).execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    second.close()


def test_newer_schema_is_refused(db: Path) -> None:
    SQLiteStore(db).close()
    _raw(db).execute("UPDATE schema_version SET version = 99")
    with pytest.raises(ConfigError, match="newer"):
        SQLiteStore(db)


def test_storage_types(store: SQLiteStore, db: Path) -> None:
    event = Event(id="e", type="t", source="s", subject="x", time=T0, data={"k": "v"})
    store.record_issuance(_cert("1"), events=[event])
    raw = _raw(db)
    der_type, issued_type = raw.execute(
        "SELECT typeof(der), typeof(issued_at) FROM certificates"
    ).fetchone()
    assert (der_type, issued_type) == ("blob", "integer")
    data, valid = raw.execute("SELECT data, json_valid(data) FROM events").fetchone()
    assert valid == 1 and data == '{"k":"v"}'


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        (
            "SELECT * FROM certificates WHERE endpoint_id = ? ORDER BY issued_at, serial",
            ("e",),
            "certificates_by_endpoint",
        ),
        (
            "SELECT * FROM revocations WHERE authority_id = ? AND not_after >= ? "
            "ORDER BY not_after, serial",
            ("a", 0),
            "revocations_by_authority_expiry",
        ),
        (
            "SELECT * FROM endpoints WHERE authority_id = ? AND id > ? ORDER BY id LIMIT 5",
            ("a", ""),
            "endpoints_by_authority",
        ),
        ("DELETE FROM used_tokens WHERE expires_at < ?", (0,), "used_tokens_by_expiry"),
        ("SELECT 1 FROM used_tokens WHERE digest = ?", (b"x",), "used_tokens_by_digest"),
        ("SELECT * FROM events WHERE time >= ? ORDER BY time, id LIMIT 5", (0,), "events_by_time"),
        (
            "SELECT serial FROM certificates WHERE authority_id = ? AND (issued_at, serial) > (?, ?) "
            "ORDER BY issued_at, serial LIMIT 5",
            ("a", 0, ""),
            "certificates_by_authority_issued",
        ),
        (
            "SELECT serial FROM certificates WHERE authority_id = ? AND not_after >= ? AND not_after < ? "
            "ORDER BY not_after, serial LIMIT 5",
            ("a", 0, 1),
            "certificates_by_authority_expiry",
        ),
        ("SELECT * FROM certificates WHERE serial = ?", ("1",), "sqlite_autoindex_certificates_1"),
        (
            "SELECT data FROM documents WHERE collection = ? AND id = ?",
            ("c", "d"),
            "sqlite_autoindex_documents_1",
        ),
        (
            "DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at < ?",
            (0,),
            "documents_by_expiry",
        ),
    ],
)
def test_queries_use_their_index(
    store: SQLiteStore, db: Path, sql: str, params: tuple[object, ...], index: str
) -> None:
    plan = " ".join(str(r) for r in _raw(db).execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert index in plan, plan


def test_lock_timeout_is_a_transient_backend_error(db: Path) -> None:
    store = SQLiteStore(db, busy_timeout_ms=50)
    holder = _raw(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BackendError) as info:
            store.claim("jti", "k", T0)
        assert info.value.transient is True
        assert "sqlite3" not in type(info.value).__module__
    finally:
        holder.execute("ROLLBACK")
    assert store.claim("jti", "k", T0) is True  # the pool recovered
    # Reads are not blocked by a writer in WAL mode.
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert store.get_certificate("1") is None
    finally:
        holder.execute("ROLLBACK")
    store.close()


def test_use_after_close_is_a_backend_error(db: Path) -> None:
    store = SQLiteStore(db)
    store.close()
    with pytest.raises(BackendError):
        store.next_value("c")


def test_pool_reuses_connections_across_short_lived_threads(store: SQLiteStore) -> None:
    opened: list[int] = []
    original = store._connect

    def counting_connect() -> sqlite3.Connection:
        conn = original()
        opened.append(id(conn))
        return conn

    store._connect = counting_connect  # type: ignore[method-assign]
    for i in range(50):  # a thread per request, as Werkzeug's threaded server does
        t = threading.Thread(target=store.claim, args=("jti", str(i), T0))
        t.start()
        t.join()
    assert len(opened) <= 1
    assert len(store._idle) <= store._max_idle


def test_rollback_leaves_connection_usable(store: SQLiteStore) -> None:
    store.record_issuance(_cert("1"))
    for _ in range(3):
        with pytest.raises(ValueError):
            store.append_events(
                [Event(id="x", type="t", source="s", subject="x", time=T0, data={"b": b"x"})]
            )
    assert store.list_events() == []
    store.revoke(Revocation(serial="1", authority_id="a", revoked_at=T0, not_after=T0 + HOUR))
    assert store.get_revocation("1") is not None


def _fork_child(store: SQLiteStore) -> None:
    assert store.claim("jti", "from-child", T0 + HOUR)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_forked_child_opens_its_own_connections(store: SQLiteStore) -> None:
    assert store.claim("jti", "from-parent", T0 + HOUR)  # parent has a pooled connection
    proc = multiprocessing.get_context("fork").Process(target=_fork_child, args=(store,))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert store.claim("jti", "from-child", T0 + HOUR) is False
    assert store.claim("jti", "after-fork", T0 + HOUR) is True


def test_invalid_synchronous_is_config_error(db: Path) -> None:
    with pytest.raises(ConfigError):
        SQLiteStore(db, synchronous="OFF")  # type: ignore[arg-type]
