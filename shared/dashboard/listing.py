"""The queries behind the dashboard's lists, each bounded so a page stays fast at 100,000 endpoints.

- Endpoints by id: keyset pagination over `EndpointStore.list_endpoints(after=...)`
  (the endpoints primary key / document id order). Search and filters are applied
  while reading forward in batches, and one request reads at most `SCAN_LIMIT`
  endpoints: when that runs out before the page fills, the page offers "continue"
  from where it stopped, so no request ever scans the whole table.
- Certificates (and endpoints) by expiry: `list_certificates_expiring`, the range
  query the expiry alerts use (index `(authority_id, not_after, serial)` on SQLite,
  a composite index on Firestore), with the cursor `(not_after, serial)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.model import CertificateRecord, Endpoint
from shared.store.base import CertificateReader, EndpointStore, RevocationReader

PAGE_SIZE = 50
BATCH = 200
SCAN_LIMIT = 2000
STATUSES = ("active", "expired", "revoked", "none")
FAR_FUTURE = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


class ExpiringCertificates(Protocol):
    """The range query over certificate expiry (as in `shared.alerts`)."""

    def list_certificates_expiring(
        self, authority_id: str, start: dt.datetime, end: dt.datetime, *, limit: int = 1000
    ) -> Sequence[tuple[dt.datetime, str, str]]: ...


class ListingStore(EndpointStore, CertificateReader, RevocationReader, Protocol):
    """What the lists read."""


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """One endpoint as the list shows it."""

    endpoint: Endpoint
    status: str
    latest: CertificateRecord | None


def certificate_status(store: RevocationReader, record: CertificateRecord, now: dt.datetime) -> str:
    """`revoked`, `expired` or `active`."""
    if store.get_revocation(record.serial) is not None:
        return "revoked"
    return "expired" if record.not_after <= now else "active"


def endpoint_row(store: ListingStore, endpoint: Endpoint, now: dt.datetime) -> EndpointRow:
    """An endpoint with the status of its newest certificate (one indexed read per endpoint)."""
    certs = store.list_certificates_by_endpoint(endpoint.id)
    if not certs:
        return EndpointRow(endpoint, "none", None)
    latest = certs[-1]
    return EndpointRow(endpoint, certificate_status(store, latest, now), latest)


def list_endpoints(
    store: ListingStore,
    *,
    authority_id: str | Sequence[str],
    now: dt.datetime,
    after: str = "",
    query: str = "",
    provisioner_id: str = "",
    status: str = "",
    limit: int = PAGE_SIZE,
) -> tuple[list[EndpointRow], str]:
    """A page of endpoints by id after `after`, filtered; returns the rows and the next cursor ("" at the end).

    `authority_id` is one authority or several (a deployment with `authorities`, linked ones): for
    several, the read goes over every endpoint in id order and keeps those of the given
    authorities, so one id cursor pages them all (skipped endpoints count against `SCAN_LIMIT`).
    """
    ids = (authority_id,) if isinstance(authority_id, str) else tuple(dict.fromkeys(authority_id))
    only = ids[0] if len(ids) == 1 else None
    wanted = frozenset(ids)
    needle = query.casefold()
    rows: list[EndpointRow] = []
    cursor, scanned = after, 0
    while len(rows) < limit and scanned < SCAN_LIMIT:
        batch = store.list_endpoints(authority_id=only, limit=BATCH, after=cursor)
        if not batch:
            return rows, ""
        for endpoint in batch:
            scanned += 1
            cursor = endpoint.id
            if endpoint.authority_id not in wanted:
                continue
            if needle and needle not in endpoint.name.casefold() and needle not in endpoint.id.casefold():
                continue
            if provisioner_id and endpoint.provisioner_id != provisioner_id:
                continue
            row = endpoint_row(store, endpoint, now)
            if status and row.status != status:
                continue
            rows.append(row)
            if len(rows) >= limit:
                break
        if len(batch) < BATCH and cursor == batch[-1].id and len(rows) < limit:
            return rows, ""
    return rows, cursor


def list_by_expiry(
    store: ExpiringCertificates,
    *,
    authority_id: str,
    start: dt.datetime,
    after_serial: str = "",
    limit: int = PAGE_SIZE,
) -> tuple[list[tuple[dt.datetime, str, str]], tuple[dt.datetime, str] | None]:
    """Certificates expiring at or after `start` (then after `after_serial` at exactly `start`).

    Returns `(not_after, serial, endpoint_id)` rows and the next cursor, or None at the end.
    """
    # The range query starts at `start` inclusive; rows at exactly `start` up to `after_serial` were
    # on earlier pages. When many certificates share that instant, read further (doubling) past them.
    want = ask = limit + 1
    while True:
        fetched = store.list_certificates_expiring(authority_id, start, FAR_FUTURE, limit=ask)
        rows = [r for r in fetched if not (after_serial and r[0] == start and r[1] <= after_serial)]
        if len(rows) >= want or len(fetched) < ask:
            break
        ask *= 2
    page = rows[:limit]
    if len(rows) > limit and page:
        return page, (page[-1][0], page[-1][1])
    return page, None


def list_by_expiry_across(
    store: ExpiringCertificates,
    *,
    authority_ids: Sequence[str],
    start: dt.datetime,
    after_serial: str = "",
    limit: int = PAGE_SIZE,
) -> tuple[list[tuple[dt.datetime, str, str, str]], tuple[dt.datetime, str] | None]:
    """`list_by_expiry` over several authorities, merged by `(not_after, serial)`: every authority of
    the deployment on one list with one cursor.

    Each authority's range query reads at most one page past the cursor, so a page costs
    one bounded query per authority (a deployment has a handful). Returns
    `(not_after, serial, endpoint_id, authority_id)` rows and the next cursor (None at the end).
    """
    merged: list[tuple[dt.datetime, str, str, str]] = []
    more = False
    for authority_id in dict.fromkeys(authority_ids):
        rows, cursor = list_by_expiry(store, authority_id=authority_id, start=start, after_serial=after_serial,
                                      limit=limit)  # fmt: skip
        merged.extend((*row, authority_id) for row in rows)
        more = more or cursor is not None
    merged.sort(key=lambda r: (r[0], r[1]))
    page = merged[:limit]
    if (more or len(merged) > limit) and page:
        return page, (page[-1][0], page[-1][1])
    return page, None
