"""The SQLite store's endpoint-month records: kept inside the issuance's and the revocation's transaction.

`endpoint_months` holds one row per (month, endpoint) in which the endpoint had an active
certificate (`shared.metering` states the rule). An issuance reads the endpoint's
certificates that are still active after the new one starts (`certificates_by_endpoint_expiry`:
a handful, whatever the length of the lineage) and the rows of the months the new
certificate spans, then upserts those rows; a revocation recomputes the months it cut
short from the endpoint's certificates active in them. Both run on the caller's connection,
inside its `BEGIN IMMEDIATE` transaction, so the records can never disagree with the
certificates and revocations they summarise. `SQLiteUsage` is the store's read side of them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from shared import metering
from shared.store import codec
from shared.store.base import EndpointMonth, MonthTotal
from shared.store.sqlite_connections import SQLiteConnections

# certificate row positions (codec.CERTIFICATE_COLUMNS)
_SERIAL, _AUTHORITY, _NOT_BEFORE, _NOT_AFTER, _ENDPOINT, _ISSUED_AT = 0, 1, 4, 5, 9, 13
assert codec.CERTIFICATE_COLUMNS[_ENDPOINT] == "endpoint_id"
assert codec.CERTIFICATE_COLUMNS[_ISSUED_AT] == "issued_at"

_INTERVALS = (
    "SELECT c.serial, c.not_before, c.not_after, c.issued_at, r.revoked_at "
    "FROM certificates c INDEXED BY certificates_by_endpoint_expiry "
    "LEFT JOIN revocations r ON r.serial = c.serial "
    "WHERE c.endpoint_id = ? AND c.not_after > ? AND c.not_before < ?"
)
_UPSERT = (
    "INSERT INTO endpoint_months (month, endpoint_id, authority_id, name, billable_from, billable_to, peak_active) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (month, endpoint_id) DO UPDATE SET "
    "billable_from = excluded.billable_from, billable_to = excluded.billable_to, peak_active = excluded.peak_active"
)


def _intervals(
    conn: sqlite3.Connection, endpoint_id: str, since_us: int, until_us: int, skip: str = ""
) -> list[metering.Interval]:
    """Active intervals of the endpoint's certificates that may touch `[since_us, until_us)`."""
    out: list[metering.Interval] = []
    for serial, nb, na, issued, revoked in conn.execute(_INTERVALS, (endpoint_id, since_us, until_us)):
        if serial == skip:
            continue
        out.append(
            metering.active_interval(not_before_us=nb, not_after_us=na, issued_at_us=issued, revoked_at_us=revoked)
        )
    return out


def _current(
    conn: sqlite3.Connection, endpoint_id: str, months: Sequence[str]
) -> dict[str, tuple[metering.MonthUsage, str, str]]:
    """The existing rows of these months: usage, authority id and name."""
    if not months:
        return {}
    marks = ", ".join("?" * len(months))
    rows = conn.execute(
        "SELECT month, billable_from, billable_to, peak_active, authority_id, name FROM endpoint_months "  # noqa: S608
        f"WHERE endpoint_id = ? AND month IN ({marks})",
        (endpoint_id, *months),
    ).fetchall()
    return {r[0]: (metering.MonthUsage(r[1], r[2], r[3]), r[4], r[5]) for r in rows}


def _owner(conn: sqlite3.Connection, endpoint_id: str, fallback_authority: str) -> tuple[str, str]:
    row = conn.execute("SELECT authority_id, name FROM endpoints WHERE id = ?", (endpoint_id,)).fetchone()
    return (str(row[0]), str(row[1])) if row is not None else (fallback_authority, "")


def meter_issuance(conn: sqlite3.Connection, cert_row: Sequence[Any]) -> None:
    """Fold a certificate just inserted (in this transaction) into its endpoint's month rows."""
    endpoint_id = cert_row[_ENDPOINT]
    new = metering.active_interval(
        not_before_us=cert_row[_NOT_BEFORE],
        not_after_us=cert_row[_NOT_AFTER],
        issued_at_us=cert_row[_ISSUED_AT],
        revoked_at_us=None,
    )
    months = metering.months_overlapping(new)
    if not months:
        return
    current = _current(conn, endpoint_id, months)
    others = _intervals(conn, endpoint_id, new[0], new[1], skip=cert_row[_SERIAL])
    updated = metering.after_issuance(new, others, {m: c[0] for m, c in current.items()})
    owner: tuple[str, str] | None = None
    rows = []
    for month, usage in updated.items():
        if month in current:
            authority_id, name = current[month][1], current[month][2]
        else:
            owner = owner or _owner(conn, endpoint_id, cert_row[_AUTHORITY])
            authority_id, name = owner
        rows.append(
            (month, endpoint_id, authority_id, name, usage.billable_from_us, usage.billable_to_us, usage.peak_active)
        )
    conn.executemany(_UPSERT, rows)


def meter_revocation(conn: sqlite3.Connection, serial: str, revoked_at_us: int) -> None:
    """Recompute the month rows a revocation (just inserted in this transaction) cut short."""
    row = conn.execute(
        "SELECT endpoint_id, not_before, not_after, issued_at, authority_id FROM certificates WHERE serial = ?",
        (serial,),
    ).fetchone()
    if row is None:  # a serial this store never recorded (revocation by serial alone)
        return
    endpoint_id, nb, na, issued, authority = row
    before = metering.active_interval(not_before_us=nb, not_after_us=na, issued_at_us=issued, revoked_at_us=None)
    after = metering.active_interval(
        not_before_us=nb, not_after_us=na, issued_at_us=issued, revoked_at_us=revoked_at_us
    )
    months = metering.revocation_months(before, after)
    if not months:
        return
    since, _ = metering.month_bounds(months[0])
    _, until = metering.month_bounds(months[-1])
    recomputed = metering.after_revocation(months, _intervals(conn, endpoint_id, since, until))
    _write(conn, endpoint_id, authority, recomputed)


def _write(
    conn: sqlite3.Connection, endpoint_id: str, authority: str, usage: dict[str, metering.MonthUsage | None]
) -> None:
    current = _current(conn, endpoint_id, list(usage))
    owner: tuple[str, str] | None = None
    for month, u in usage.items():
        if u is None:
            conn.execute("DELETE FROM endpoint_months WHERE month = ? AND endpoint_id = ?", (month, endpoint_id))
            continue
        if month in current:
            authority_id, name = current[month][1], current[month][2]
        else:
            owner = owner or _owner(conn, endpoint_id, authority)
            authority_id, name = owner
        conn.execute(
            _UPSERT, (month, endpoint_id, authority_id, name, u.billable_from_us, u.billable_to_us, u.peak_active)
        )


def backfill(conn: sqlite3.Connection) -> None:
    """Build every endpoint's month rows from the certificates already stored (schema upgrade to 4)."""
    rows = conn.execute(
        "SELECT c.endpoint_id, c.authority_id, c.not_before, c.not_after, c.issued_at, r.revoked_at "
        "FROM certificates c LEFT JOIN revocations r ON r.serial = c.serial ORDER BY c.endpoint_id"
    )
    group: list[metering.Interval] = []
    current = ""
    authority = ""
    for endpoint_id, auth, nb, na, issued, revoked in rows.fetchall():
        if endpoint_id != current:
            _backfill_one(conn, current, authority, group)
            current, authority, group = endpoint_id, auth, []
        group.append(
            metering.active_interval(not_before_us=nb, not_after_us=na, issued_at_us=issued, revoked_at_us=revoked)
        )
    _backfill_one(conn, current, authority, group)


def _backfill_one(
    conn: sqlite3.Connection, endpoint_id: str, authority: str, intervals: list[metering.Interval]
) -> None:
    if not intervals:
        return
    months = sorted({m for iv in intervals for m in metering.months_overlapping(iv)})
    _write(conn, endpoint_id, authority, dict(metering.after_revocation(months, intervals)))


def list_endpoint_months(
    conn: sqlite3.Connection, month: str, authority_id: str | None, *, after: str = "", limit: int | None = None
) -> list[EndpointMonth]:
    """A month's rows ordered by endpoint id (those above `after`, at most `limit`: the primary key's range)."""
    metering.parse_month(month)
    sql = (
        "SELECT endpoint_id, authority_id, name, billable_from, billable_to, peak_active "
        "FROM endpoint_months WHERE month = ?"
    )
    params: tuple[Any, ...] = (month,)
    if authority_id is not None:
        sql += " AND authority_id = ?"
        params = (*params, authority_id)
    if after:
        sql += " AND endpoint_id > ?"
        params = (*params, after)
    sql += " ORDER BY endpoint_id"
    if limit is not None:
        sql += " LIMIT ?"
        params = (*params, limit)
    rows: Iterable[Any] = conn.execute(sql, params).fetchall()
    # Instants repeat (the month's first and last for every endpoint active all month):
    # each is decoded once, and equal instants share one datetime.
    decoded: dict[int, Any] = {}

    def f(us: int) -> Any:
        value = decoded.get(us)
        if value is None:
            value = decoded[us] = codec.from_epoch_us(us)
        return value

    return [EndpointMonth(month, r[0], r[1], r[2], f(r[3]), f(r[4]), r[5]) for r in rows]


def usage_total(conn: sqlite3.Connection, month: str, authority_id: str | None) -> MonthTotal:
    """A month's totals in one aggregate over its rows (the primary key's `month` prefix)."""
    metering.parse_month(month)
    extra = metering.EXTRA_ABOVE
    sql = (
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN peak_active > ? THEN peak_active - ? ELSE 0 END), 0) "
        "FROM endpoint_months WHERE month = ? AND peak_active > 0"
    )
    params: tuple[Any, ...] = (extra, extra, month)
    if authority_id is not None:
        sql += " AND authority_id = ?"
        params = (*params, authority_id)
    count, above = conn.execute(sql, params).fetchone()
    return MonthTotal(month, int(count), int(count) + int(above))


class SQLiteUsage(SQLiteConnections):
    """The endpoint-month reads (the writes run inside issuance and revocation, above)."""

    def list_endpoint_months(self, month: str, *, authority_id: str | None = None) -> Sequence[EndpointMonth]:
        """Return a month's endpoint-month records, by endpoint id (`list_endpoint_months` above)."""
        with self._read("list endpoint months") as conn:
            return list_endpoint_months(conn, month, authority_id)

    def page_endpoint_months(self, month: str, *, after: str = "", limit: int = 50) -> Sequence[EndpointMonth]:
        """A page of a month's endpoint-month records, by endpoint id (`list_endpoint_months` above)."""
        with self._read("page endpoint months") as conn:
            return list_endpoint_months(conn, month, None, after=after, limit=limit)

    def usage_total(self, month: str, *, authority_id: str | None = None) -> MonthTotal:
        """A month's totals, one aggregate query (`list_endpoint_months` above)."""
        with self._read("usage total") as conn:
            return usage_total(conn, month, authority_id)
