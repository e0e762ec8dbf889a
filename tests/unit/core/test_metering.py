"""The metering rule (`shared.metering`): month arithmetic, the sweep, and the incremental
records the stores keep, checked against a from-scratch computation on random timelines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import metering
from shared.model import CertificateKind, CertificateRecord, ProvisionerRef, Revocation
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore

UTC = dt.UTC
HOUR_US = 3_600_000_000


@pytest.mark.parametrize(
    "text", ["2026-1", "2026-13", "2026-00", "26-01", "2026-01-01", " 2026-01", "\uff12\uff10\uff12\uff16-01", "0000-01"]
)
def test_malformed_months_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="month"):
        metering.parse_month(text)


def test_month_bounds_and_the_months_an_interval_touches() -> None:
    start, end = metering.month_bounds("2024-02")
    assert end - start == 29 * 24 * HOUR_US  # a leap year
    assert metering.month_bounds("2025-12")[1] == metering.month_bounds("2026-01")[0]
    assert metering.months_overlapping((start, end)) == ["2024-02"]  # the end is exclusive
    assert metering.months_overlapping((start - 1, end + 1)) == ["2024-01", "2024-02", "2024-03"]
    assert metering.months_overlapping((start, start)) == []


def test_units_are_one_plus_each_active_certificate_above_three() -> None:
    assert [metering.units(p) for p in range(7)] == [0, 1, 1, 1, 2, 3, 4]


def test_half_open_intervals_do_not_overlap_at_the_handover() -> None:
    h = HOUR_US
    usage = metering.summarize([(0, 2 * h), (2 * h, 4 * h), (h, 3 * h)], (0, 10 * h))
    assert usage == metering.MonthUsage(0, 4 * h, 2)


def _brute(intervals: list[metering.Interval]) -> dict[str, metering.MonthUsage]:
    months = sorted({m for iv in intervals for m in metering.months_overlapping(iv)})
    out = {m: metering.summarize(intervals, metering.month_bounds(m)) for m in months}
    return {m: u for m, u in out.items() if u is not None}


def _cert(serial: str, start_h: int, hours: int, backdate_h: int) -> CertificateRecord:
    issued = dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(hours=start_h)
    return CertificateRecord(
        serial=serial,
        authority_id="a",
        kind=CertificateKind.X509,
        der=b"\x30\x00",
        not_before=issued - dt.timedelta(hours=backdate_h),
        not_after=issued + dt.timedelta(hours=hours),
        provisioner=ProvisionerRef("p", "p", "JWK"),
        endpoint_id="ep",
        subject_key="s",
        common_name="s",
        sans=(),
        issued_at=issued,
    )


# (start hour, lifetime hours, backdate hours, revoke after this many hours or None); starts
# spread over ~4 months so intervals cross month ends, in any order (late reports).
_STEP = st.tuples(
    st.integers(0, 24 * 120),
    st.integers(1, 24 * 70),
    st.integers(0, 2),
    st.one_of(st.none(), st.integers(-5, 24 * 80)),
)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_STEP, min_size=1, max_size=9))
def test_incremental_records_equal_a_computation_from_scratch(
    tmp_path: Path, steps: list[tuple[int, int, int, int | None]]
) -> None:
    # Issue every certificate, then revoke some (a revocation may fall before the certificate
    # starts, after it ends, or inside it): after each write the records the store keeps must
    # equal the sweep over all intervals.
    db = tmp_path / f"m{abs(hash(tuple(steps)))}.db"
    stores = [MemoryStore(), SQLiteStore(db)]
    intervals: dict[str, metering.Interval] = {}
    try:
        for i, (start, hours, back, _) in enumerate(steps):
            rec = _cert(str(i), start, hours, back)
            for s in stores:
                s.record_issuance(rec)
            intervals[rec.serial] = (metering.to_us(rec.issued_at), metering.to_us(rec.not_after))
            _check(stores, list(intervals.values()))
        for i, (start, hours, _, revoke_after) in enumerate(steps):
            if revoke_after is None:
                continue
            rec = _cert(str(i), start, hours, 0)
            when = rec.issued_at + dt.timedelta(hours=revoke_after)
            for s in stores:
                s.revoke(Revocation(serial=str(i), authority_id="a", revoked_at=when, not_after=rec.not_after))
            s0, e0 = intervals[str(i)]
            intervals[str(i)] = (s0, max(s0, min(e0, metering.to_us(when))))
            _check(stores, list(intervals.values()))
    finally:
        for s in stores:
            s.close()
        for suffix in ("", "-wal", "-shm", ".writelock"):
            Path(str(db) + suffix).unlink(missing_ok=True)


def _check(stores: list[MemoryStore | SQLiteStore], intervals: list[metering.Interval]) -> None:
    expected = _brute(intervals)
    for s in stores:
        got = {}
        for month in ("2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07"):
            for r in s.list_endpoint_months(month):
                got[month] = metering.MonthUsage(
                    metering.to_us(r.billable_from), metering.to_us(r.billable_to), r.peak_active
                )
        assert got == expected, type(s).__name__
