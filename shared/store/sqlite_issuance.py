"""The SQLite store's issuance records: certificates, endpoints and the one-transaction issuance write.

Split from `shared.store.sqlite` by concern. An issuance stores the token claim, maybe a new
endpoint, the certificate, its endpoint-month records (`sqlite_usage`) and its events in one
`BEGIN IMMEDIATE` transaction, so a certificate is handed out only once all of it is durable.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from shared.errors import Conflict, TokenAlreadyUsed
from shared.model import CertificateRecord, Endpoint, Event, TokenClaim
from shared.store import codec, sqlite_rows, sqlite_usage
from shared.store.base import IssuanceWrite
from shared.store.sqlite_connections import SQLiteConnections


class SQLiteIssuance(SQLiteConnections):
    """Certificate and endpoint reads, and recording issuances (one or a batch per commit)."""

    def get_certificate(self, serial: str) -> CertificateRecord | None:
        """Return the record for a serial, or None."""
        with self._read("get certificate") as conn:
            row = conn.execute(f"{sqlite_rows.CERT_SELECT} WHERE serial = ?", (serial,)).fetchone()
        return codec.certificate_from_row(row) if row is not None else None

    def list_certificates_by_endpoint(self, endpoint_id: str) -> Sequence[CertificateRecord]:
        """Return an endpoint's certificates, oldest issue first (serial breaks ties)."""
        with self._read("list certificates") as conn:
            rows = conn.execute(
                f"{sqlite_rows.CERT_SELECT} WHERE endpoint_id = ? ORDER BY issued_at, serial",
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
            sqlite_rows.claim_row(claim) if claim is not None else None,
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
            cur = conn.execute(sqlite_rows.CLAIM_INSERT, claim_row)
            if cur.rowcount != 1:
                raise TokenAlreadyUsed()
        if endpoint_row is not None:
            conn.execute(sqlite_rows.ENDPOINT_INSERT, endpoint_row)
        try:
            conn.execute(sqlite_rows.CERT_INSERT, cert_row)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" not in str(exc):
                raise
            raise Conflict(f"certificate with serial number '{serial}' already exists") from None
        sqlite_usage.meter_issuance(conn, cert_row)
        conn.executemany(sqlite_rows.EVENT_INSERT, event_rows)

    # ----------------------------------------------------------------- endpoints

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return one endpoint or None."""
        with self._read("get endpoint") as conn:
            row = conn.execute(f"{sqlite_rows.ENDPOINT_SELECT} WHERE id = ?", (endpoint_id,)).fetchone()
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
                    f"{sqlite_rows.ENDPOINT_SELECT} WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
                ).fetchall()
            else:
                rows = conn.execute(
                    f"{sqlite_rows.ENDPOINT_SELECT} WHERE authority_id = ? AND id > ? ORDER BY id LIMIT ?",
                    (authority_id, after, limit),
                ).fetchall()
        return [codec.endpoint_from_row(r) for r in rows]
