"""The embedded default `Store`: one SQLite file, safe for several processes.

`cirrus up` may run more than one worker process on the same file, and each
runs a threaded HTTP server, so this backend is built for concurrent writers:

- WAL journal: readers never block the writer and the writer never blocks
  readers; one writer at a time across all processes.
- Every write is `BEGIN IMMEDIATE ... COMMIT`: the write lock is taken up
  front, so a transaction never fails half-way with SQLITE_BUSY when it tries
  to upgrade from reading to writing (the deadlock a deferred transaction hits).
  Waiting for the lock is bounded by `busy_timeout`; running out of time raises
  `BackendError(transient=True)`.
- `synchronous=NORMAL` (the default here): a commit is written to the WAL but
  not fsync'd; it survives a crash of the process (the OS holds it), but an OS
  crash or power loss may roll back the last transactions. That buys about an
  order of magnitude in write throughput. Pass `synchronous="FULL"` (URL:
  `sqlite:/path.db?synchronous=full`) to fsync every commit when a handed-out
  certificate must survive power loss.
- Checkpoints: WAL frames are copied into the database file by `checkpoint()`,
  which a background thread calls about once a second (`cirrus up` runs it in the
  master process). Request connections do not checkpoint inside their commits
  (that copy and its fsync used to be the largest single cost of an issuance);
  only if nobody calls `checkpoint()` does a commit do it, once the WAL reaches
  `WAL_AUTOCHECKPOINT_PAGES`, so the WAL is bounded either way. Checkpointing
  changes nothing about durability: a committed transaction is in the WAL, which
  every reader sees, whether or not it has been copied yet.
- Connections: a SQLite connection must not be used by two threads at once.
  Each operation borrows a connection from a small pool and returns it, so a
  connection is only ever used by one thread at a time. This is the
  thread-local pattern without its leak: Werkzeug's threaded server starts a
  thread per request, and thread-local connections would mean one connection
  opened (and schema re-read) per request. A process that forks abandons the
  parent's connections (SQLite forbids using them across fork) and opens its
  own.

Schema (created on open, idempotent, versioned in `schema_version`; older files
are upgraded in place on open, in one transaction: `shared.store.sqlite_schema`; the
files are 0600: `shared.store.sqlite_files`):
times are INTEGER microseconds since the epoch (UTC), DER is a BLOB, event and
document data are JSON text. Every write is priced in B-tree pages (each page
changed is a 1 KiB WAL frame per commit), so keys are chosen for it: events are
unique by `(time, id)` (time-ordered, so inserts share hot pages) rather than by
a random UUID key; used tokens are a rowid table unique by a 32-byte digest, and
endpoint ids are time-ordered UUIDv7s (`shared.endpoints.new_endpoint_id`).
`find_documents` uses a partial expression index per searched (collection, field),
`json_extract(data, '$."field"')` over that collection's rows, created on the
first search and from then on maintained by SQLite in every process; a write pays
only for the indexes of its own collection that someone searches (ACME: one), not
one row per string field.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from shared.clock import Clock, SystemClock
from shared.errors import AlreadyRevoked, BackendError, ConfigError, Conflict, TokenAlreadyUsed
from shared.model import CertificateRecord, Endpoint, Event, Revocation, TokenClaim
from shared.store import codec, sqlite_files, sqlite_usage
from shared.store.base import EndpointMonth, IssuanceWrite, MonthTotal
from shared.store.sqlite_inventory import SQLiteInventories
from shared.store.sqlite_schema import MIGRATE_1_TO_2 as _MIGRATE_1_TO_2  # noqa: F401 - tests import it here
from shared.store.sqlite_schema import (
    SCHEMA_VERSION,  # noqa: F401 - the store's public constant
    create_or_upgrade,
)
from shared.store.sqlite_schema import claim_digest as _claim_digest

# WAL checkpointing belongs to `checkpoint()`, called by a background thread (`cirrus up`
# runs one in the master process). A request connection checkpoints only as a safety valve,
# when the WAL reaches this many pages (32 MiB of 1 KiB pages; an issuance appends about 18),
# so the WAL stays bounded even without that thread. It is set well above what accumulates
# between background checkpoints at full load, or every commit past it would checkpoint.
WAL_AUTOCHECKPOINT_PAGES = 32768
# After a checkpoint lets the WAL restart, a WAL file larger than this is truncated to it.
JOURNAL_SIZE_LIMIT_BYTES = 32 * 1024 * 1024
# A passive checkpoint cannot finish while writers keep appending; once the WAL is this many
# frames long, `checkpoint()` finishes the last stretch holding the writers' lock.
CHECKPOINT_FORCE_FRAMES = 2048

# Statements built from the codec's constant column lists; values are always bound.
_CLAIM_INSERT = "INSERT OR IGNORE INTO used_tokens (digest, namespace, key, expires_at) VALUES (?, ?, ?, ?)"


def _claim_row(claim: TokenClaim) -> tuple[bytes, str, str, int]:
    """A token claim as its `used_tokens` row."""
    return (
        _claim_digest(claim.namespace, claim.key),
        claim.namespace,
        claim.key,
        codec.to_epoch_us(claim.expires_at, "expires_at"),
    )


_CERT_INSERT = (
    f"INSERT INTO certificates ({', '.join(codec.CERTIFICATE_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.CERTIFICATE_COLUMNS))})"
)
_CERT_SELECT = f"SELECT {', '.join(codec.CERTIFICATE_COLUMNS)} FROM certificates"  # noqa: S608
_ENDPOINT_INSERT = (
    f"INSERT OR IGNORE INTO endpoints ({', '.join(codec.ENDPOINT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.ENDPOINT_COLUMNS))})"
)
_ENDPOINT_SELECT = f"SELECT {', '.join(codec.ENDPOINT_COLUMNS)} FROM endpoints"  # noqa: S608
_REVOCATION_INSERT = (
    f"INSERT INTO revocations ({', '.join(codec.REVOCATION_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.REVOCATION_COLUMNS))})"
)
_REVOCATION_SELECT = f"SELECT {', '.join(codec.REVOCATION_COLUMNS)} FROM revocations"  # noqa: S608
# OR IGNORE: an event id already logged is a retry of the same fact, not a new one.
_EVENT_INSERT = (
    f"INSERT OR IGNORE INTO events ({', '.join(codec.EVENT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(codec.EVENT_COLUMNS))})"
)
_EVENT_SELECT = f"SELECT {', '.join(codec.EVENT_COLUMNS)} FROM events"  # noqa: S608

# Connections inherited across fork(): never used, never closed (closing could
# checkpoint or unlink the WAL under the parent), just kept referenced.
_ABANDONED: list[sqlite3.Connection] = []

Synchronous = Literal["NORMAL", "FULL"]


def _sql_text(value: str) -> str:
    """A SQL string literal (for DDL and partial-index predicates, which cannot bind values)."""
    return "'" + value.replace("'", "''") + "'"


def _document_index(collection: str, field: str) -> tuple[str, str, str] | None:
    """`(index name, indexed expression, partial-index predicate)` for one searched field.

    The expression must be spelled identically in the index and in the query for SQLite to
    use the index, so both come from here. None when the field cannot be written as a
    quoted JSON path label (it contains a double quote) or either name holds a NUL.
    """
    if '"' in field or "\x00" in field or "\x00" in collection:
        return None
    digest = hashlib.sha256(f"{collection}\x00{field}".encode()).hexdigest()[:24]
    path = '$."' + field + '"'
    expr = f"json_extract(data, {_sql_text(path)})"
    return f"documents_by_field_{digest}", expr, f"collection = {_sql_text(collection)}"


def _backend_error(exc: sqlite3.Error, what: str) -> BackendError:
    """Translate a sqlite3 exception; lock timeouts are worth retrying."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    transient = primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        primary is None and "locked" in str(exc)
    )
    return BackendError(f"sqlite store: {what} failed: {exc}", transient=transient)


class SQLiteStore(SQLiteInventories):
    """Every storage role on one SQLite database file."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock | None = None,
        busy_timeout_ms: int = 10_000,
        synchronous: Synchronous = "NORMAL",
        max_idle_connections: int = 8,
        wal_autocheckpoint_pages: int = WAL_AUTOCHECKPOINT_PAGES,
    ) -> None:
        """Open (creating if needed) the database and its schema.

        Args:
            path: The database file; its directory must exist.
            clock: Used only when `purge_expired_documents` is called without a time.
            busy_timeout_ms: How long a write waits for another writer's lock.
            synchronous: "NORMAL" (fast, survives process crash) or "FULL"
                (fsync per commit, survives power loss).
            max_idle_connections: Connections kept open between operations.
            wal_autocheckpoint_pages: WAL length at which a committing request checkpoints
                itself (the safety valve when `checkpoint()` is not being called).
        """
        if synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"sqlite synchronous must be NORMAL or FULL, not {synchronous!r}")
        self._path = str(path)
        self._clock: Clock = clock or SystemClock()
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._synchronous = synchronous
        self._max_idle = max_idle_connections
        self._autocheckpoint_pages = int(wal_autocheckpoint_pages)
        # find_documents SQL per (collection, field) whose expression index is known to exist.
        self._find_sql: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        # Writers queue on these instead of SQLite's busy handler, which sleeps in growing steps
        # (1, 2, 5 ... 100 ms) and turns contention into latency: a thread lock inside the
        # process, and an flock() on a sidecar file across processes (the kernel wakes the next
        # waiter at once). SQLite's own locking still guards correctness; these only order writers.
        self._write_lock = threading.Lock()
        self._flock_fd: int | None = None
        self._flock_pid = -1
        self._idle: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        try:
            sqlite_files.create_private(self._path)
            self._initialise()
            sqlite_files.narrow(self._path)
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    # ----------------------------------------------------------------- connections

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
                check_same_thread=False,  # the pool hands it to one thread at a time
                timeout=self._busy_timeout_ms / 1000,
                cached_statements=64,
            )
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute(f"PRAGMA wal_autocheckpoint = {self._autocheckpoint_pages}")
            conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}")
        except sqlite3.Error as exc:
            raise _backend_error(exc, "open") from exc
        return conn

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise BackendError("sqlite store: used after close")
            if self._pid != os.getpid():
                _ABANDONED.extend(self._idle)
                self._idle = []
                self._pid = os.getpid()
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _release(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # only after a failure we could not roll back
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        with self._lock:
            if not self._closed and self._pid == os.getpid() and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        """Borrow a connection for autocommit reads (each statement sees one snapshot)."""
        conn = self._acquire()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise _backend_error(exc, what) from exc
        finally:
            self._release(conn)

    def _process_lock_fd(self) -> int | None:
        """A per-process descriptor of the sidecar lock file (None for in-memory databases)."""
        if sqlite_files.in_memory(self._path):
            return None
        if self._flock_fd is None or self._flock_pid != os.getpid():
            self._flock_fd = os.open(self._path + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
            self._flock_pid = os.getpid()
        return self._flock_fd

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """Run the body in one `BEGIN IMMEDIATE` transaction; roll back on any error.

        One generator for the whole write (lock order, transaction, error translation):
        this wraps every write of a request, so each extra layer is paid per certificate.
        """
        with self._write_lock:
            fd = self._flock_fd if self._flock_pid == os.getpid() else self._process_lock_fd()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                conn = self._acquire()
                try:
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                conn.execute("ROLLBACK")
                        raise
                except sqlite3.Error as exc:
                    raise _backend_error(exc, what) from exc
                finally:
                    self._release(conn)
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def checkpoint(self) -> tuple[int, int]:
        """Copy committed WAL frames into the database file (PASSIVE); cheap when there are none.

        Request connections leave checkpointing to this (see `WAL_AUTOCHECKPOINT_PAGES`), so a
        background thread should call it about once a second. A passive checkpoint never waits
        for writers, but the WAL only restarts from its beginning when a writer finds it fully
        copied, which a steady stream of writers never does (each appends while the checkpoint
        runs). So once the WAL is `CHECKPOINT_FORCE_FRAMES` long, the frames appended during
        the first pass (few: it copied the rest) are copied holding the writers' lock; the
        next writer then restarts the WAL, and its length stays bounded.

        Returns:
            `(wal_frames, checkpointed_frames)` after the call.
        """
        frames, done = self._checkpoint_once()
        if frames >= CHECKPOINT_FORCE_FRAMES:
            with self._write_lock:
                fd = self._process_lock_fd()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    frames, done = self._checkpoint_once()
                finally:
                    if fd is not None:
                        fcntl.flock(fd, fcntl.LOCK_UN)
        return frames, done

    def _checkpoint_once(self) -> tuple[int, int]:
        with self._read("checkpoint") as conn:
            _, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames), int(done)

    def _initialise(self) -> None:
        # Under the writers' process lock: processes opening a new file at once race to
        # switch it to WAL, and SQLite may refuse a lock upgrade with "database is locked"
        # without waiting on the busy timeout. (Hardening: a multi-process test failed once
        # under heavy load without its cause being kept; this race was not reproduced.)
        fd = self._process_lock_fd()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            conn = self._acquire()
            try:
                conn.execute("PRAGMA page_size = 1024")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.Error as exc:
                raise _backend_error(exc, "enable WAL") from exc
            finally:
                self._release(conn)
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        if str(mode).lower() != "wal":
            raise ConfigError(f"sqlite store: cannot use WAL journal (got {mode!r})")
        with self._write("create schema") as conn:
            create_or_upgrade(conn)

    def schema_version(self) -> int:
        """Return the schema version recorded in the file."""
        with self._read("read schema version") as conn:
            row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
        return int(row[0])

    # ----------------------------------------------------------------- TokenLedger

    def claim(self, namespace: str, key: str, expires_at: dt.datetime) -> bool:
        """Create `(namespace, key)` if absent; True only for the creator."""
        with self._write("claim") as conn:
            return conn.execute(_CLAIM_INSERT, _claim_row(TokenClaim(namespace, key, expires_at))).rowcount == 1

    def purge_expired(self, now: dt.datetime) -> int:
        """Delete claims that expired before `now`."""
        now_us = codec.to_epoch_us(now, "now")
        with self._write("purge expired claims") as conn:
            return conn.execute("DELETE FROM used_tokens WHERE expires_at < ?", (now_us,)).rowcount

    # ----------------------------------------------------------------- certificates

    def get_certificate(self, serial: str) -> CertificateRecord | None:
        """Return the record for a serial, or None."""
        with self._read("get certificate") as conn:
            row = conn.execute(f"{_CERT_SELECT} WHERE serial = ?", (serial,)).fetchone()
        return codec.certificate_from_row(row) if row is not None else None

    def list_certificates_by_endpoint(self, endpoint_id: str) -> Sequence[CertificateRecord]:
        """Return an endpoint's certificates, oldest issue first (serial breaks ties)."""
        with self._read("list certificates") as conn:
            rows = conn.execute(
                f"{_CERT_SELECT} WHERE endpoint_id = ? ORDER BY issued_at, serial",
                (endpoint_id,),
            ).fetchall()
        return [codec.certificate_from_row(r) for r in rows]

    def list_serials_issued_since(
        self, authority_id: str, since: dt.datetime, *, limit: int = 1000, after_serial: str = ""
    ) -> Sequence[tuple[dt.datetime, str, dt.datetime, str]]:
        """Return `(issued_at, serial, not_after, kind)` after the cursor `(since, after_serial)`.

        Ordered by `(issued_at, serial)`; `after_serial=""` includes `issued_at == since`.
        """
        if limit <= 0:
            return []
        since_us = codec.to_epoch_us(since, "since")
        with self._read("list serials issued since") as conn:
            rows = conn.execute(
                "SELECT issued_at, serial, not_after, kind FROM certificates "
                "WHERE authority_id = ? AND (issued_at, serial) > (?, ?) "
                "ORDER BY issued_at, serial LIMIT ?",
                (authority_id, since_us, after_serial, limit),
            ).fetchall()
        return [(codec.from_epoch_us(r[0]), r[1], codec.from_epoch_us(r[2]), r[3]) for r in rows]

    def list_certificates_expiring(
        self, authority_id: str, start: dt.datetime, end: dt.datetime, *, limit: int = 1000
    ) -> Sequence[tuple[dt.datetime, str, str]]:
        """Return `(not_after, serial, endpoint_id)` with start <= not_after < end, by not_after then serial."""
        if limit <= 0:
            return []
        with self._read("list certificates expiring") as conn:
            rows = conn.execute(
                "SELECT not_after, serial, endpoint_id FROM certificates "
                "WHERE authority_id = ? AND not_after >= ? AND not_after < ? ORDER BY not_after, serial LIMIT ?",
                (authority_id, codec.to_epoch_us(start, "start"), codec.to_epoch_us(end, "end"), limit),
            ).fetchall()
        return [(codec.from_epoch_us(r[0]), r[1], r[2]) for r in rows]

    def record_issuance(
        self,
        certificate: CertificateRecord,
        *,
        new_endpoint: Endpoint | None = None,
        events: Sequence[Event] = (),
        claim: TokenClaim | None = None,
    ) -> None:
        """Store the token claim, the certificate, maybe an endpoint, and events in one transaction."""
        rows = self._issuance_rows(IssuanceWrite(certificate, new_endpoint, events, claim))
        with self._write("record issuance") as conn:
            self._insert_issuance(conn, *rows)

    def record_issuances(self, writes: Sequence[IssuanceWrite]) -> list[Exception | None]:
        """Record several issuances in one commit, each in its own savepoint (see `BatchIssuanceLedger`)."""
        outcomes: list[Exception | None] = []
        prepared: list[tuple[Any, ...] | None] = []
        for write in writes:
            try:
                prepared.append(self._issuance_rows(write))
            except Exception as exc:  # a record the codec refuses fails alone, before the transaction
                prepared.append(None)
                outcomes.append(exc)
                continue
            outcomes.append(None)
        if not any(p is not None for p in prepared):
            return outcomes
        with self._write("record issuances") as conn:
            # Optimistically without savepoints (two statements less per issuance): a replayed
            # token or a serial clash is rare, and then the whole batch is undone and redone
            # below, one savepoint per issuance, so only the refused ones fail.
            conn.execute("SAVEPOINT batch")
            try:
                for rows in prepared:
                    if rows is not None:
                        self._insert_issuance(conn, *rows)
            except (TokenAlreadyUsed, Conflict):
                conn.execute("ROLLBACK TO batch")
            else:
                conn.execute("RELEASE batch")
                return outcomes
            conn.execute("RELEASE batch")
            for i, rows in enumerate(prepared):
                if rows is None:
                    continue
                conn.execute("SAVEPOINT issuance")
                try:
                    self._insert_issuance(conn, *rows)
                except (TokenAlreadyUsed, Conflict) as exc:
                    conn.execute("ROLLBACK TO issuance")
                    outcomes[i] = exc
                conn.execute("RELEASE issuance")
        return outcomes

    @staticmethod
    def _issuance_rows(write: IssuanceWrite) -> tuple[Any, ...]:
        """Encode one issuance, events included: a record or event the codec refuses raises before any write."""
        codec.check_issuance(write.certificate, write.new_endpoint)
        claim = write.claim
        return (
            codec.certificate_to_row(write.certificate),
            codec.endpoint_to_row(write.new_endpoint) if write.new_endpoint is not None else None,
            _claim_row(claim) if claim is not None else None,
            [codec.event_to_row(e) for e in write.events],
            write.certificate.serial,
        )

    @staticmethod
    def _insert_issuance(
        conn: sqlite3.Connection,
        cert_row: Any,
        endpoint_row: Any,
        claim_row: Any,
        event_rows: list[Any],
        serial: str,
    ) -> None:
        if claim_row is not None:
            cur = conn.execute(_CLAIM_INSERT, claim_row)
            if cur.rowcount != 1:
                raise TokenAlreadyUsed()
        if endpoint_row is not None:
            conn.execute(_ENDPOINT_INSERT, endpoint_row)
        try:
            conn.execute(_CERT_INSERT, cert_row)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise
            raise Conflict(f"certificate with serial number '{serial}' already exists") from None
        sqlite_usage.meter_issuance(conn, cert_row)
        conn.executemany(_EVENT_INSERT, event_rows)

    # ----------------------------------------------------------------- endpoints

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return one endpoint or None."""
        with self._read("get endpoint") as conn:
            row = conn.execute(f"{_ENDPOINT_SELECT} WHERE id = ?", (endpoint_id,)).fetchone()
        return codec.endpoint_from_row(row) if row is not None else None

    def list_endpoints(
        self, *, authority_id: str | None = None, limit: int = 100, after: str = ""
    ) -> Sequence[Endpoint]:
        """Return endpoints ordered by id, starting after the id `after`."""
        if limit <= 0:
            return []
        with self._read("list endpoints") as conn:
            if authority_id is None:
                rows = conn.execute(
                    f"{_ENDPOINT_SELECT} WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
                ).fetchall()
            else:
                rows = conn.execute(
                    f"{_ENDPOINT_SELECT} WHERE authority_id = ? AND id > ? ORDER BY id LIMIT ?",
                    (authority_id, after, limit),
                ).fetchall()
        return [codec.endpoint_from_row(r) for r in rows]

    # ----------------------------------------------------------------- revocations

    def get_revocation(self, serial: str) -> Revocation | None:
        """Return the revocation of a serial, or None."""
        with self._read("get revocation") as conn:
            row = conn.execute(f"{_REVOCATION_SELECT} WHERE serial = ?", (serial,)).fetchone()
        return codec.revocation_from_row(row) if row is not None else None

    def revoked_since(self, since: dt.datetime) -> bool:
        """Whether any revocation has `revoked_at` at or after `since` (one index lookup)."""
        since_us = codec.to_epoch_us(since, "since")
        with self._read("revoked since") as conn:
            row = conn.execute("SELECT 1 FROM revocations WHERE revoked_at >= ? LIMIT 1", (since_us,)).fetchone()
        return row is not None

    def list_revocations(
        self, authority_id: str, *, not_after_since: dt.datetime
    ) -> Sequence[Revocation]:
        """Return an authority's revocations expiring at or after `not_after_since`."""
        since_us = codec.to_epoch_us(not_after_since, "not_after_since")
        with self._read("list revocations") as conn:
            rows = conn.execute(
                f"{_REVOCATION_SELECT} WHERE authority_id = ? AND not_after >= ? "
                "ORDER BY not_after, serial",
                (authority_id, since_us),
            ).fetchall()
        return [codec.revocation_from_row(r) for r in rows]

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Record a revocation and its events atomically, or raise AlreadyRevoked."""
        row = codec.revocation_to_row(revocation)
        with self._write("revoke") as conn:
            try:
                conn.execute(_REVOCATION_INSERT, row)
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" not in str(exc):
                    raise
                raise AlreadyRevoked(revocation.serial) from None
            sqlite_usage.meter_revocation(conn, revocation.serial, row[2])
            conn.executemany(_EVENT_INSERT, (codec.event_to_row(e) for e in events))

    # ----------------------------------------------------------------- usage

    def list_endpoint_months(self, month: str, *, authority_id: str | None = None) -> Sequence[EndpointMonth]:
        """Return a month's endpoint-month records, by endpoint id (`sqlite_usage`)."""
        with self._read("list endpoint months") as conn:
            return sqlite_usage.list_endpoint_months(conn, month, authority_id)

    def page_endpoint_months(self, month: str, *, after: str = "", limit: int = 50) -> Sequence[EndpointMonth]:
        """A page of a month's endpoint-month records, by endpoint id (`sqlite_usage`)."""
        with self._read("page endpoint months") as conn:
            return sqlite_usage.list_endpoint_months(conn, month, None, after=after, limit=limit)

    def usage_total(self, month: str, *, authority_id: str | None = None) -> MonthTotal:
        """A month's totals, one aggregate query (`sqlite_usage`)."""
        with self._read("usage total") as conn:
            return sqlite_usage.usage_total(conn, month, authority_id)

    # ----------------------------------------------------------------- events

    def append_events(self, events: Sequence[Event]) -> None:
        """Append events; an id already logged is ignored (retries are idempotent)."""
        if not events:
            return
        with self._write("append events") as conn:
            conn.executemany(_EVENT_INSERT, (codec.event_to_row(e) for e in events))

    def list_events(self, *, since: dt.datetime | None = None, limit: int = 100) -> Sequence[Event]:
        """Return events with time >= `since`, ordered by (time, id)."""
        if limit <= 0:
            return []
        with self._read("list events") as conn:
            if since is None:
                rows = conn.execute(f"{_EVENT_SELECT} ORDER BY time, id LIMIT ?", (limit,))
            else:
                rows = conn.execute(
                    f"{_EVENT_SELECT} WHERE time >= ? ORDER BY time, id LIMIT ?",
                    (codec.to_epoch_us(since, "since"), limit),
                )
            return [codec.event_from_row(r) for r in rows.fetchall()]

    # ----------------------------------------------------------------- counters

    def next_value(self, name: str) -> int:
        """Increment and return the named counter (first value 1)."""
        with self._write("increment counter") as conn:
            rows = conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
                (name,),
            ).fetchall()
        return int(rows[0][0])

    # ----------------------------------------------------------------- documents

    def create_document(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create a document at version 1 if absent."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        with self._write("create document") as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO documents (collection, id, data, version, expires_at) "
                "VALUES (?, ?, ?, 1, ?)",
                (collection, doc_id, text, expires_us),
            )
            return cur.rowcount == 1

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        with self._read("get document") as conn:
            row = conn.execute(
                "SELECT data, version FROM documents WHERE collection = ? AND id = ?",
                (collection, doc_id),
            ).fetchone()
        return (codec.load_json_object(row[0]), int(row[1])) if row is not None else None

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_document` for each key, in order, in one statement (one snapshot)."""
        if not keys:
            return []
        where = " OR ".join(["(collection = ? AND id = ?)"] * len(keys))
        with self._read("get documents") as conn:
            rows = conn.execute(
                f"SELECT collection, id, data, version FROM documents WHERE {where}",  # noqa: S608 (placeholders only)
                [part for key in keys for part in key],
            ).fetchall()
        found = {(collection, doc_id): (data, version) for collection, doc_id, data, version in rows}
        out: list[tuple[dict[str, Any], int] | None] = []
        for key in keys:
            row = found.get((key[0], key[1]))
            out.append((codec.load_json_object(row[0]), int(row[1])) if row is not None else None)
        return out

    def update_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int
    ) -> bool:
        """Replace the document if its version is still `expected_version`."""
        text = codec.dump_json(data, "document data")
        with self._write("update document") as conn:
            cur = conn.execute(
                "UPDATE documents SET data = ?, version = version + 1 "
                "WHERE collection = ? AND id = ? AND version = ?",
                (text, collection, doc_id, expected_version),
            )
            return cur.rowcount == 1

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Return documents whose top-level string `field` equals `value`, by id."""
        if limit <= 0:
            return []
        sql = self._find_sql.get((collection, field)) or self._find_query(collection, field)
        with self._read("find documents") as conn:
            if sql:
                rows = conn.execute(sql, (value, limit)).fetchall()
            else:  # a field name no JSON path can spell: scan the collection
                rows = conn.execute(
                    "SELECT id, data, version FROM documents WHERE collection = ? ORDER BY id",
                    (collection,),
                ).fetchall()
        out: list[tuple[str, dict[str, Any], int]] = []
        for doc_id, text, version in rows:
            data = codec.load_json_object(text)
            if codec.field_matches(data, field, value):  # the exact predicate of every backend
                out.append((doc_id, data, int(version)))
                if len(out) == limit:
                    break
        return out

    def _find_query(self, collection: str, field: str) -> str:
        """The indexed `find_documents` query for one (collection, field); creates its index.

        The index is partial (only this collection's rows) over the field's JSON value, so a
        write pays for it only in the collection it searches, and SQLite keeps it up to date
        in every process. It is made on the first search (once per database, later searches
        in any process find it in the schema); until then no write pays anything. Returns ""
        for a field name a JSON path cannot quote (then the caller scans the collection).
        """
        index = _document_index(collection, field)
        if index is None:
            return ""
        name, expr, where = index
        with self._read("find document index") as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
            ).fetchone()
        if exists is None:
            with self._write("create document index") as conn:
                conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON documents ({expr}, id) WHERE {where}")
        # The type test keeps a JSON object or number whose text equals `value` out of the
        # SQL result, so LIMIT counts only real matches.
        sql = (
            f"SELECT id, data, version FROM documents INDEXED BY {name} "  # noqa: S608
            f"WHERE {where} AND {expr} = ? AND {expr.replace('json_extract', 'json_type')} = 'text' "
            "ORDER BY id LIMIT ?"
        )
        self._find_sql[(collection, field)] = sql
        return sql

    def purge_expired_documents(self, now: dt.datetime | None = None) -> int:
        """Delete documents whose `expires_at` is before `now` (default: the clock)."""
        now_us = codec.to_epoch_us(now if now is not None else self._clock.now(), "now")
        with self._write("purge expired documents") as conn:
            return conn.execute(
                "DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at < ?",
                (now_us,),
            ).rowcount

    def create_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        claim: TokenClaim,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Claim the token and create the document in one transaction (both or neither)."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        return self._write_claiming(
            "create document claiming",
            claim,
            "INSERT OR IGNORE INTO documents (collection, id, data, version, expires_at) VALUES (?, ?, ?, 1, ?)",
            (collection, doc_id, text, expires_us),
        )

    def update_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expected_version: int,
        claim: TokenClaim,
    ) -> bool:
        """Claim the token and compare-and-set the document in one transaction (both or neither)."""
        text = codec.dump_json(data, "document data")
        return self._write_claiming(
            "update document claiming",
            claim,
            "UPDATE documents SET data = ?, version = version + 1 WHERE collection = ? AND id = ? AND version = ?",
            (text, collection, doc_id, expected_version),
        )

    def _write_claiming(self, what: str, claim: TokenClaim, statement: str, params: tuple[Any, ...]) -> bool:
        """Run a one-row document write and claim the token with it: TokenAlreadyUsed if the token
        is spent (nothing written), False if the write matched no row (token left unspent)."""
        claim_row = _claim_row(claim)
        with self._write(what) as conn:
            if conn.execute("SELECT 1 FROM used_tokens WHERE digest = ?", claim_row[:1]).fetchone():
                raise TokenAlreadyUsed()
            if conn.execute(statement, params).rowcount != 1:
                return False
            conn.execute(_CLAIM_INSERT, claim_row)
            return True

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close idle connections; borrowed ones close when returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if self._flock_fd is not None and self._flock_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._flock_fd)
            self._flock_fd = None


def from_url(url: str, *, clock: Clock) -> SQLiteStore:
    """Open `sqlite:/abs/path.db` (also `sqlite:///abs/path.db`).

    Query options: `synchronous=normal|full`, `busy_timeout_ms=N`.

    Raises:
        ConfigError: the URL is malformed or the path is not absolute.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "sqlite" or parsed.netloc:
        raise ConfigError("store URL must look like sqlite:/absolute/path.db")
    path = urllib.parse.unquote(parsed.path)
    if not path or not os.path.isabs(path):
        raise ConfigError("store URL must give an absolute path: sqlite:/absolute/path.db")
    options = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    unknown = set(options) - {"synchronous", "busy_timeout_ms"}
    if unknown:
        raise ConfigError(f"unknown sqlite store option(s): {', '.join(sorted(unknown))}")
    synchronous = options.get("synchronous", "normal").upper()
    if synchronous not in ("NORMAL", "FULL"):
        raise ConfigError("sqlite store option synchronous must be normal or full")
    try:
        busy_timeout_ms = int(options.get("busy_timeout_ms", "10000"))
    except ValueError:
        raise ConfigError("sqlite store option busy_timeout_ms must be an integer") from None
    return SQLiteStore(
        path,
        clock=clock,
        busy_timeout_ms=busy_timeout_ms,
        synchronous="FULL" if synchronous == "FULL" else "NORMAL",
    )
