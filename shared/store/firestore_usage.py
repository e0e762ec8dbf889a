"""The Firestore store's endpoint-month records, read and written inside the issuance's transaction.

`P + endpoint_months` holds one document per (month, endpoint) in which the endpoint had
an active certificate (`shared.metering` states the rule): `month`, `endpoint_id`,
`authority_id`, `name`, `billable_from`/`billable_to` (fixed-width ISO) and `peak_active`.
An issuance or a revocation reads, in its transaction, the month documents it touches;
then the endpoint's certificates still active after the change begins (an equality filter
on `endpoint_id` and a range on `not_after`: composite index (endpoint_id, not_after)) and
their revocations; and writes those month documents with the certificate or the revocation.

The month documents are the endpoint's lock; the certificate query is not part of the
transaction. Every change to the active intervals an endpoint has in a month (an
issuance active in it, a revocation cutting it short) writes that month's document, and
two transactions on one document are serialised: the later one reads the month document
only after the earlier one committed (its transactional read waits for, or is aborted
and re-run after, the earlier commit) and only then queries, and Firestore's reads are
strongly consistent, so its query sees the earlier certificate or revocation. Changes in
other months cannot alter this transaction's months. Left in the transaction, the query
would lock its index range; the Firestore emulator locks far more than that (issuances
into different endpoints waited on each other for its 2 s lock timeout), so the query runs
outside and the order of the reads (months first) is what the exactness rests on.

Nothing here imports the SDK: the store passes its collections, client and filter type.
`FirestoreUsage` is the store's read side of the records and owns the meter its issuance
and revocation transactions write with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared import metering
from shared.retry import Attempt
from shared.store import codec
from shared.store import firestore_docs as docs
from shared.store.base import EndpointMonth, MonthTotal
from shared.store.firestore_connection import FirestoreConnection

ENDPOINT_MONTHS = "endpoint_months"


def _us(iso: str) -> int:
    return codec.to_epoch_us(codec.from_iso(iso))


def _iso(us: int) -> str:
    return codec.to_iso(codec.from_epoch_us(us))


def month_doc_id(month: str, endpoint_id: str) -> str:
    """`YYYY-MM|endpoint id`, escaped like every other id."""
    return docs.doc_id(f"{month}|{endpoint_id}")


def interval_of(fields: Mapping[str, Any], revoked_at_iso: str | None) -> metering.Interval:
    """A certificate document's active interval."""
    return metering.active_interval(
        not_before_us=_us(fields["not_before"]),
        not_after_us=_us(fields["not_after"]),
        issued_at_us=_us(fields["issued_at"]),
        revoked_at_us=_us(revoked_at_iso) if revoked_at_iso else None,
    )


class FirestoreMeter:
    """Reads and writes of the month documents, on a transaction the store runs."""

    def __init__(self, *, col: Callable[[str], Any], client: Any, field_filter: Any) -> None:
        self._col = col
        self._client = client
        self._filter = field_filter

    def month_ref(self, month: str, endpoint_id: str) -> Any:
        """The document of one endpoint's month."""
        return self._col(ENDPOINT_MONTHS).document(month_doc_id(month, endpoint_id))

    def intervals(
        self,
        tx: Any,
        kw: Mapping[str, Any],
        endpoint_id: str,
        window: metering.Interval,
        *,
        skip: str = "",
        revoked: Mapping[str, str] | None = None,
    ) -> list[metering.Interval]:
        """Active intervals of the endpoint's certificates that may touch `window`.

        Read outside the transaction `tx` (strongly consistent, no locks): call it only after
        `read_months` has read the month documents it serves (module docstring). `revoked`
        overrides `revoked_at` for serials revoked in this same transaction.
        """
        query = (
            self._col(docs.CERTIFICATES)
            .where(filter=self._filter("endpoint_id", "==", endpoint_id))
            .where(filter=self._filter("not_after", ">", _iso(window[0])))
            .select(["serial", "not_before", "not_after", "issued_at"])
        )
        until = _iso(window[1])
        found = [
            f for f in (s.to_dict() for s in query.stream(**kw)) if f["not_before"] < until
        ]
        found = [f for f in found if f["serial"] != skip]
        refs = {docs.doc_id(f["serial"]): self._col(docs.REVOCATIONS).document(docs.doc_id(f["serial"])) for f in found}
        revoked_at: dict[str, str] = {}
        if refs:
            for snap in self._client.get_all(list(refs.values()), field_paths=["revoked_at"], **kw):
                if snap.exists:
                    revoked_at[snap.id] = str(snap.get("revoked_at"))
        overrides = revoked or {}
        return [
            interval_of(f, overrides.get(f["serial"]) or revoked_at.get(docs.doc_id(f["serial"]))) for f in found
        ]

    def read_months(
        self, tx: Any, kw: Mapping[str, Any], endpoint_id: str, months: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The existing month documents of the endpoint, by month."""
        if not months:
            return {}
        refs = [self.month_ref(m, endpoint_id) for m in months]
        return {
            str(f["month"]): f
            for f in (s.to_dict() for s in self._client.get_all(refs, transaction=tx, **kw) if s.exists)
        }

    def write_months(
        self,
        tx: Any,
        endpoint_id: str,
        owner: tuple[str, str],
        current: Mapping[str, Mapping[str, Any]],
        usage: Mapping[str, metering.MonthUsage | None],
    ) -> None:
        """Set (or delete, where None) the month documents; a new one takes `owner` (authority, name)."""
        for month, u in usage.items():
            ref = self.month_ref(month, endpoint_id)
            if u is None:
                if month in current:
                    tx.delete(ref)
                continue
            old = current.get(month)
            authority_id, name = (old["authority_id"], old["name"]) if old is not None else owner
            tx.set(
                ref,
                {
                    "month": month,
                    "endpoint_id": endpoint_id,
                    "authority_id": authority_id,
                    "name": name,
                    "billable_from": _iso(u.billable_from_us),
                    "billable_to": _iso(u.billable_to_us),
                    "peak_active": u.peak_active,
                },
            )


def usage_of(fields: Mapping[str, Any]) -> metering.MonthUsage:
    """A month document's usage."""
    return metering.MonthUsage(_us(fields["billable_from"]), _us(fields["billable_to"]), int(fields["peak_active"]))


def endpoint_month_from_fields(fields: Mapping[str, Any]) -> EndpointMonth:
    """Decode a month document."""
    return EndpointMonth(
        month=str(fields["month"]),
        endpoint_id=str(fields["endpoint_id"]),
        authority_id=str(fields["authority_id"]),
        name=str(fields["name"]),
        billable_from=codec.from_iso(fields["billable_from"]),
        billable_to=codec.from_iso(fields["billable_to"]),
        peak_active=int(fields["peak_active"]),
    )


class FirestoreUsage(FirestoreConnection):
    """The endpoint-month reads, and the meter the issuance and revocation transactions write with."""

    @functools.cached_property
    def _meter(self) -> FirestoreMeter:
        return FirestoreMeter(col=self._col, client=self._client, field_filter=self._filter)

    def list_endpoint_months(self, month: str, *, authority_id: str | None = None) -> Sequence[EndpointMonth]:
        """Return a month's endpoint-month records, by endpoint id (one equality query)."""
        metering.parse_month(month)
        query = self._col(ENDPOINT_MONTHS).where(filter=self._filter("month", "==", month))
        if authority_id is not None:
            query = query.where(filter=self._filter("authority_id", "==", authority_id))

        def op(a: Attempt) -> list[EndpointMonth]:
            found = [endpoint_month_from_fields(s.to_dict()) for s in query.stream(**self._kw(a))]
            found.sort(key=lambda r: r.endpoint_id)
            return found

        return self._run("list_endpoint_months", op)

    def page_endpoint_months(self, month: str, *, after: str = "", limit: int = 50) -> Sequence[EndpointMonth]:
        """A page of a month's records by endpoint id: equality on month, range and order on
        `endpoint_id` (composite index (month, endpoint_id))."""
        metering.parse_month(month)
        query = self._col(ENDPOINT_MONTHS).where(filter=self._filter("month", "==", month))
        if after:
            query = query.where(filter=self._filter("endpoint_id", ">", after))
        query = query.order_by("endpoint_id", direction=self._ascending).limit(limit)

        def op(a: Attempt) -> list[EndpointMonth]:
            return [endpoint_month_from_fields(s.to_dict()) for s in query.stream(**self._kw(a))]

        return self._run("page_endpoint_months", op)

    def usage_total(self, month: str, *, authority_id: str | None = None) -> MonthTotal:
        """A month's totals by two aggregation queries (count; count and sum above the included three).

        `endpoint_months = count + sum(peak) - 3 * count(peak > 3)` over the records with
        `peak_active > 3`; no record is read. Index: (month, peak_active) in firestore_indexes.json.
        """
        metering.parse_month(month)
        extra = metering.EXTRA_ABOVE
        query = self._col(ENDPOINT_MONTHS).where(filter=self._filter("month", "==", month))
        if authority_id is not None:
            query = query.where(filter=self._filter("authority_id", "==", authority_id))
        every = query.where(filter=self._filter("peak_active", ">", 0)).count(alias="n")
        above = query.where(filter=self._filter("peak_active", ">", extra))
        above_agg = above.count(alias="n").sum("peak_active", alias="s")

        def values(agg: Any, a: Attempt) -> dict[str, int]:
            found = agg.get(**self._kw(a))
            return {r.alias: int(r.value or 0) for row in found for r in row}

        def op(a: Attempt) -> MonthTotal:
            n = values(every, a).get("n", 0)
            big = values(above_agg, a)
            return MonthTotal(month, n, n + big.get("s", 0) - extra * big.get("n", 0))

        return self._run("usage_total", op)
