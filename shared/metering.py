"""Metering: each endpoint's usage per calendar month, kept up to date as certificates change.

DESIGN.md s.1: an endpoint is billable from the issue of its first certificate until its
last certificate expires or is revoked; usage is counted in endpoint-months; an endpoint
with more than three certificates active at once counts one extra for each above three.
The exact rule implemented here (docs/usage.md works every case through):

- A certificate is *active* over the half-open interval
  `[max(not_before, issued_at), min(not_after, revoked_at))` (empty when that is not
  positive). `issued_at` bounds the start because issuance backdates `not_before` by a
  minute for clock skew: a certificate issued at 00:00:30 on the 1st must not bill the
  previous month, and a renewal must not seem to overlap a certificate that lapsed before
  it was issued. Half-open: a certificate that expires at the instant its successor starts
  does not overlap it.
- An endpoint is billable in month M (UTC) if at least one of its certificates is active at
  some instant of M. Within M it is billable from the first such instant (`billable_from`)
  to the last (`billable_to`, exclusive); a month with no active certificate is not billed,
  even between two that are (an endpoint that lapsed and came back pays for the months it
  was live, not for the gap).
- `peak_active` is the largest number of the endpoint's certificates active at one
  instant of M. A revocation ends a certificate's interval at `revoked_at`, so it lowers
  the counts after that instant (the rest of that month, and later months) but never the
  counts before it: a peak the endpoint really reached earlier in the month stays.
- `units = 1 + max(0, peak_active - 3)` endpoint-months.

Each store keeps one small record per (month, endpoint) with `billable_from`,
`billable_to` and `peak_active`, updated in the same atomic write as the issuance or the
revocation, so a month's report reads one record per billable endpoint. These pure
functions compute the new records from the old ones and the endpoint's few certificate
intervals that overlap the change; the stores only fetch those and write the result.

Times are integer microseconds since the epoch (UTC), the stores' own encoding. Calendar
arithmetic is written by hand (a dozen lines) because only whole UTC months are needed;
months are cached, since this runs inside every issuance's write.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Interval = tuple[int, int]
"""`[start_us, end_us)`; empty when `end_us <= start_us`."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MONTH = re.compile(r"(\d{4})-(\d{2})")
EXTRA_ABOVE = 3
"""Concurrently active certificates an endpoint-month includes."""


def units(peak_active: int) -> int:
    """Endpoint-months one endpoint counts in a month with this peak (0 when never active)."""
    if peak_active <= 0:
        return 0
    return 1 + max(0, peak_active - EXTRA_ABOVE)


def active_interval(*, not_before_us: int, not_after_us: int, issued_at_us: int, revoked_at_us: int | None) -> Interval:
    """The instants a certificate counts as active (see the module docstring)."""
    start = max(not_before_us, issued_at_us)
    end = not_after_us if revoked_at_us is None else min(not_after_us, revoked_at_us)
    return (start, max(start, end))


def _us(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


def parse_month(text: str) -> tuple[int, int]:
    """`"YYYY-MM"` as (year, month).

    Raises:
        ValueError: not a month from 0001-01 to 9998-12 written as YYYY-MM.
    """
    m = _MONTH.fullmatch(text) if isinstance(text, str) and text.isascii() else None
    if m is None:
        raise ValueError(f"month must be written YYYY-MM, not {text!r}")
    year, month = int(m.group(1)), int(m.group(2))
    if not 1 <= month <= 12 or not 1 <= year <= 9998:
        raise ValueError(f"no such month: {text!r}")
    return year, month


@functools.lru_cache(maxsize=256)
def month_bounds(month: str) -> Interval:
    """`[first instant, first instant of the next month)` of a `YYYY-MM` month (UTC), in microseconds."""
    year, mon = parse_month(month)
    start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=dt.UTC)
    return _us(start), _us(end)


_DAY_US = 86_400_000_000


def month_of(instant_us: int) -> str:
    """The `YYYY-MM` month (UTC) an instant falls in."""
    return _month_of_day(instant_us // _DAY_US)


@functools.lru_cache(maxsize=4096)
def _month_of_day(day: int) -> str:
    d = _EPOCH + dt.timedelta(days=day)
    return f"{d.year:04d}-{d.month:02d}"


def months_overlapping(interval: Interval) -> list[str]:
    """The months in which some instant of `interval` lies, in order (none if it is empty)."""
    start, end = interval
    if end <= start:
        return []
    first, last = month_of(start), month_of(end - 1)
    year, mon = parse_month(first)
    out = [first]
    while out[-1] != last:
        year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
        out.append(f"{year:04d}-{mon:02d}")
    return out


@dataclass(frozen=True, slots=True)
class MonthUsage:
    """One endpoint's usage in one month: `[billable_from_us, billable_to_us)` and its peak."""

    billable_from_us: int
    billable_to_us: int
    peak_active: int


def summarize(intervals: Iterable[Interval], window: Interval) -> MonthUsage | None:
    """Usage within `window` from every interval that touches it; None if none is active in it.

    A sweep over start (+1) and end (-1) points; at equal instants ends come first,
    because the intervals are half-open.
    """
    ws, we = window
    points: list[tuple[int, int]] = []
    for s, e in intervals:
        s, e = max(s, ws), min(e, we)
        if s < e:
            points.append((s, 1))
            points.append((e, -1))
    if not points:
        return None
    points.sort()
    count = peak = 0
    first, last = points[0][0], points[-1][0]
    for _, step in points:
        count += step
        peak = max(peak, count)
    return MonthUsage(first, last, peak)


def after_issuance(
    new: Interval, others: Iterable[Interval], current: Mapping[str, MonthUsage]
) -> dict[str, MonthUsage]:
    """The records of the months a newly recorded certificate is active in.

    `others` are the endpoint's other certificates' active intervals that overlap `new`
    (intervals that do not are harmless); `current` the existing records of those
    months. Adding an interval only raises counts, so each month's new peak is the old
    one or the peak within the new interval, whichever is higher.
    """
    out: dict[str, MonthUsage] = {}
    known = [iv for iv in others if iv[0] < new[1] and iv[1] > new[0]]
    for month in months_overlapping(new):
        ms, me = month_bounds(month)
        window = (max(new[0], ms), min(new[1], me))
        inside = summarize([new, *known], window)
        assert inside is not None
        old = current.get(month)
        if old is not None:
            inside = MonthUsage(
                min(old.billable_from_us, inside.billable_from_us),
                max(old.billable_to_us, inside.billable_to_us),
                max(old.peak_active, inside.peak_active),
            )
        out[month] = inside
    return out


def revocation_months(before: Interval, after: Interval) -> list[str]:
    """The months whose records a revocation may change: those of the instants it took away."""
    return months_overlapping((max(after[1], before[0]), before[1]))


def after_revocation(months: Sequence[str], intervals: Iterable[Interval]) -> dict[str, MonthUsage | None]:
    """Each month's record recomputed from all of the endpoint's intervals (revocation applied)
    that touch it; None where nothing is active any more (the record is to be deleted)."""
    ivs = list(intervals)
    return {m: summarize(ivs, month_bounds(m)) for m in months}


def to_us(value: dt.datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return _us(value)
