"""The dashboard's usage page: one month's endpoint-months, its endpoints, and a year's chart.

It reads the stores' per-month usage records (`shared.metering` keeps them with every
issuance and revocation), never certificates, and never a whole month for one page: the
month's total is one aggregate query (`UsageQueries.usage_total`), its lines one page of
records by endpoint id (`page_endpoint_months`), and the chart twelve aggregates. The totals
of the chart's other months are kept in this instance's memory for `CHART_CACHE_SECONDS`
(a late linked report may still change a past month; the page's own month and the current
one are always read). The CSV export is the whole month, as `cirrus usage --csv`. A store
without `UsageQueries` is read whole (`shared.usage.read_report`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from shared import metering
from shared.dashboard.chart import bar_chart
from shared.dashboard.html import e, page, respond, table, url
from shared.dashboard.listing import PAGE_SIZE
from shared.store.base import MonthTotal, UsageQueries, UsageReader
from shared.usage import build_report, read_report, report_csv

if TYPE_CHECKING:
    from shared.runtime import Services

CHART_MONTHS = 12
CHART_CACHE_SECONDS = 300.0
_ID_LIMIT = 200


def month_of(now: dt.datetime) -> str:
    """The `YYYY-MM` month (UTC) of an instant."""
    utc = now.astimezone(dt.UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def months_ending(month: str, count: int) -> list[str]:
    """`count` months up to and including `month`, oldest first."""
    year, mon = metering.parse_month(month)
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{mon:02d}")
        year, mon = (year - 1, 12) if mon == 1 else (year, mon - 1)
        if year < 1:
            break
    return out[::-1]


def month_total(store: UsageReader, month: str) -> MonthTotal:
    """A month's totals: the store's aggregate when it has one, else from the month's records."""
    if isinstance(store, UsageQueries):
        return store.usage_total(month)
    report = read_report(store, month)
    return MonthTotal(month, len(report.lines), report.endpoint_months)


def chart_totals(s: Services, months: list[str], *, fresh: str, known: MonthTotal) -> list[MonthTotal]:
    """The totals of `months`: `known` as read, `fresh` read now, the others from this
    instance's cache when recent."""
    cache: dict[str, tuple[float, MonthTotal]] = s.lazy("dashboard_usage_totals", lambda _s: {})
    now = time.monotonic()
    cache[known.month] = (now, known)
    out = []
    for month in months:
        hit = cache.get(month)
        if (month == fresh and month != known.month) or hit is None or now - hit[0] > CHART_CACHE_SECONDS:
            hit = (now, month_total(s.store, month))  # type: ignore[arg-type]
            cache[month] = hit
        out.append(hit[1])
    return out


def usage(s: Services, query: Mapping[str, str], csrf: str) -> Response:
    """`/dashboard/usage?month=YYYY-MM[&after=ID][&format=csv]`; a malformed month is a 400."""
    store = s.store
    if not isinstance(store, UsageReader):
        return page("Usage", "<p>This store keeps no usage records.</p>", csrf=csrf, status=501)
    current = month_of(s.clock.now())
    month = query.get("month", "") or current
    try:
        metering.parse_month(month)
    except ValueError:
        return page("Usage", '<p class="error" role="alert">The month must be written YYYY-MM, '
                    "for example 2026-03.</p>", csrf=csrf, status=400)  # fmt: skip
    if query.get("format") == "csv":
        response = respond(report_csv(read_report(store, month)), content_type="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="usage-{month}.csv"'
        return response
    after = query.get("after", "")[:_ID_LIMIT]
    if isinstance(store, UsageQueries):
        total = store.usage_total(month)
        rest = list(build_report(month, store.page_endpoint_months(month, after=after, limit=PAGE_SIZE + 1)).lines)
    else:
        report = read_report(store, month)
        total = MonthTotal(month, len(report.lines), report.endpoint_months)
        rest = [line for line in report.lines if line.endpoint_id > after]
    rows = rest[:PAGE_SIZE]
    totals = chart_totals(s, months_ending(current, CHART_MONTHS), fresh=current, known=total)
    with_data = [t.month for t in totals if t.endpoints]
    picker = (
        f'<form method="get" action="{url("/usage")}"><label for="month">Month (UTC)</label>'
        f'<input id="month" name="month" type="month" value="{e(month)}" pattern="[0-9]{{4}}-[0-9]{{2}}" required>'
        '<button type="submit">Show</button></form>'
    )
    months_nav = (
        '<nav aria-label="Months with usage"><p>Months with usage: '
        + (", ".join(f'<a href="{url("/usage", month=m)}"'
                     + (' aria-current="page"' if m == month else "") + f">{e(m)}</a>" for m in reversed(with_data))
           or "none in the last twelve months")
        + "</p></nav>"
    )  # fmt: skip
    summary = (
        f'<p role="status" id="usage-total"><strong>{total.endpoint_months}</strong> endpoint-months in {e(month)} '
        f"from {total.endpoints} billable endpoints.</p>"
    )
    lines = table(f"Endpoints billed in {month}",
                  ["Endpoint", "Name", "Endpoint-months", "Peak active", "Billable from", "Billable to"],
                  [[f'<a href="{url("/endpoints/" + ln.endpoint_id)}">{e(ln.endpoint_id)}</a>', e(ln.name),
                    str(ln.units), str(ln.peak_active), e(ln.billable_from), e(ln.billable_to)] for ln in rows])
    if len(rest) > PAGE_SIZE:
        lines += f'<p><a rel="next" href="{url("/usage", month=month, after=rows[-1].endpoint_id)}">Next page</a></p>'
    lines += f'<p><a href="{url("/usage", month=month, format="csv")}">Export {e(month)} as CSV</a></p>'
    first, last = totals[0].month, totals[-1].month
    chart = bar_chart(
        chart_id="usage-chart", title=f"Endpoint-months per month, {first} to {last}",
        desc="; ".join(f"{t.month}: {t.endpoint_months}" for t in totals), selected=month,
        bars=[(t.month, t.endpoint_months) for t in totals],
    )  # fmt: skip
    figures = table("Endpoint-months per month (the chart's numbers)",
                    ["Month", "Billable endpoints", "Endpoint-months"],
                    [[e(t.month), str(t.endpoints), str(t.endpoint_months)] for t in totals])
    body = (picker + months_nav + summary + lines
            + f'<h2>Last twelve months</h2><figure>{chart}<figcaption>Endpoint-months per month (UTC), '
            f"{e(first)} to {e(last)}.</figcaption></figure>" + figures)  # fmt: skip
    return page(f"Usage {month}", body, csrf=csrf)
