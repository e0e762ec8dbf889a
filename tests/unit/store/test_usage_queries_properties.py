"""Property: the dashboard's usage queries agree with the month's records, on SQLite and memory.

For any certificates recorded into a handful of endpoints over three months (random issue
times, lifetimes, some revoked), each month's `usage_total` is the report built from all of its
records (`shared.usage.build_report`), and `page_endpoint_months` walked page by page returns
exactly those records, in order, once each.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.clock import FixedClock
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef, Revocation
from shared.store.base import Store, UsageQueries
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore
from shared.usage import build_report

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PROV = ProvisionerRef(id="p", name="p", type="JWK")
MONTHS = ("2026-01", "2026-02", "2026-03")

certificates = st.lists(
    st.tuples(
        st.integers(0, 5),  # endpoint
        st.integers(0, 80 * 24),  # issued, hours after T0
        st.integers(1, 40 * 24),  # lifetime, hours
        st.one_of(st.none(), st.integers(0, 40 * 24)),  # revoked this many hours after issue
    ),
    min_size=1,
    max_size=25,
)


def fill(store: Store, plan: list[tuple[int, int, int, int | None]]) -> None:
    for serial, (ep, issued_h, life_h, revoked_h) in enumerate(plan, start=1):
        issued = T0 + dt.timedelta(hours=issued_h)
        endpoint_id = f"ep-{ep}"
        new = None
        if store.get_endpoint(endpoint_id) is None:
            new = Endpoint(id=endpoint_id, authority_id="a", provisioner_id="p", subject_key=endpoint_id,
                           name=endpoint_id, created_at=issued)  # fmt: skip
        not_after = issued + dt.timedelta(hours=life_h)
        store.record_issuance(CertificateRecord(
            serial=str(serial), authority_id="a", kind=CertificateKind.X509, der=b"\x30\x00", not_before=issued,
            not_after=not_after, provisioner=PROV, endpoint_id=endpoint_id, subject_key=endpoint_id,
            common_name=endpoint_id, sans=(), issued_at=issued,
        ), new_endpoint=new)  # fmt: skip
        if revoked_h is not None:
            store.revoke(Revocation(serial=str(serial), authority_id="a", not_after=not_after,
                                    revoked_at=issued + dt.timedelta(hours=revoked_h)))  # fmt: skip


def check(store: Store) -> None:
    assert isinstance(store, UsageQueries)
    for month in MONTHS:
        records = list(store.list_endpoint_months(month))
        report = build_report(month, records)
        total = store.usage_total(month)
        assert (total.endpoints, total.endpoint_months) == (len(report.lines), report.endpoint_months)
        walked, after = [], ""
        while True:
            page = store.page_endpoint_months(month, after=after, limit=2)
            walked += page
            if len(page) < 2:
                break
            after = page[-1].endpoint_id
        assert walked == records


@settings(derandomize=True, max_examples=15, deadline=None)
@given(certificates)
def test_usage_queries_agree_with_the_records(plan: list[tuple[int, int, int, int | None]]) -> None:
    memory = MemoryStore(clock=FixedClock(T0))
    fill(memory, plan)
    check(memory)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SQLiteStore(Path(tmp) / "s.db", clock=FixedClock(T0))
        try:
            fill(sqlite, plan)
            check(sqlite)
        finally:
            sqlite.close()
