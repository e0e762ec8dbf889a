"""The SQLite store's connections, write locking and WAL checkpoints (the base of every `SQLiteStore` role).

Split from `shared.store.sqlite` so each storage role (`sqlite_issuance`, `sqlite_revocations`,
`sqlite_documents`, ...) builds on one transaction discipline instead of repeating it.
`cirrus up` may run more than one worker process on the same file, and each runs a threaded
HTTP server, so this is built for concurrent writers:
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
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Literal

from shared.errors import BackendError
from shared.store import sqlite_files

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

# Connections inherited across fork(): never used, never closed (closing could
# checkpoint or unlink the WAL under the parent), just kept referenced.
_ABANDONED: list[sqlite3.Connection] = []

Synchronous = Literal["NORMAL", "FULL"]


def _backend_error(exc: sqlite3.Error, what: str) -> BackendError:
    """Translate a sqlite3 exception; lock timeouts are worth retrying."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    transient = primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        primary is None and "locked" in str(exc)
    )
    return BackendError(f"sqlite store: {what} failed: {exc}", transient=transient)



class SQLiteConnections:
    """A pool of connections to one file, and the read / `BEGIN IMMEDIATE` write transactions on them.

    `SQLiteStore.__init__` sets these attributes; the role mixins only use `_read` and `_write`.
    """

    _path: str
    _busy_timeout_ms: int
    _synchronous: Synchronous
    _max_idle: int
    _autocheckpoint_pages: int
    _lock: threading.Lock
    _write_lock: threading.Lock
    _flock_fd: int | None
    _flock_pid: int
    _idle: list[sqlite3.Connection]
    _pid: int
    _closed: bool

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
