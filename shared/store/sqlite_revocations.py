"""The SQLite store's revocations: one row per revoked serial, written with its events and usage.

Split from `shared.store.sqlite` by concern. A revocation recomputes the endpoint-month
records it cuts short (`sqlite_usage`) in the same transaction, so usage never disagrees
with the revocations it summarises.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence

from shared.errors import AlreadyRevoked
from shared.model import Event, Revocation
from shared.store import codec, sqlite_rows, sqlite_usage
from shared.store.sqlite_connections import SQLiteConnections


class SQLiteRevocations(SQLiteConnections):
    """Revocation reads (CRL, OCSP) and the revoke write."""

    def get_revocation(self, serial: str) -> Revocation | None:
        """Return the revocation of a serial, or None."""
        with self._read("get revocation") as conn:
            row = conn.execute(f"{sqlite_rows.REVOCATION_SELECT} WHERE serial = ?", (serial,)).fetchone()
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
                f"{sqlite_rows.REVOCATION_SELECT} WHERE authority_id = ? AND not_after >= ? "
                "ORDER BY not_after, serial",
                (authority_id, since_us),
            ).fetchall()
        return [codec.revocation_from_row(r) for r in rows]

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Record a revocation and its events atomically, or raise AlreadyRevoked."""
        row = codec.revocation_to_row(revocation)
        with self._write("revoke") as conn:
            try:
                conn.execute(sqlite_rows.REVOCATION_INSERT, row)
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" not in str(exc):
                    raise
                raise AlreadyRevoked(revocation.serial) from None
            sqlite_usage.meter_revocation(conn, revocation.serial, row[2])
            conn.executemany(sqlite_rows.EVENT_INSERT, (codec.event_to_row(e) for e in events))
