"""The month's usage report in endpoint-months, built from the stores' endpoint-month records.

The stores keep one record per (month, endpoint) with an active certificate
(`shared.metering` states and `docs/usage.md` works through the rule), so a report is a
pass over one month's records: each endpoint counts `1 + max(0, peak_active - 3)`
endpoint-months, and the total is their sum. Pure functions over the records, plus
`read_report` for the one store call.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared import metering
from shared.store.base import EndpointMonth, UsageReader


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One endpoint's line of a month's report."""

    endpoint_id: str
    name: str
    units: int
    billable_from: str
    billable_to: str
    peak_active: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A month's endpoint-months: the total and one line per billable endpoint (by id)."""

    month: str
    endpoint_months: int
    lines: tuple[UsageLine, ...]


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def build_report(month: str, records: Iterable[EndpointMonth]) -> UsageReport:
    """The report of `month` from its records (records of other months are ignored).

    Written for 100,000 records a month: instants repeat (every endpoint active all month
    shares the month's first and last instant), so each is formatted once.

    Raises:
        ValueError: `month` is not a `YYYY-MM` month.
    """
    metering.parse_month(month)
    formatted: dict[Any, str] = {}

    def iso(value: Any) -> str:
        text = formatted.get(value)
        if text is None:
            text = formatted[value] = _iso(value)
        return text

    units = metering.units
    ordered = list(records)
    if any(ordered[i].endpoint_id > ordered[i + 1].endpoint_id for i in range(len(ordered) - 1)):
        ordered.sort(key=lambda r: r.endpoint_id)
    lines = tuple(
        UsageLine(r.endpoint_id, r.name, units(r.peak_active), iso(r.billable_from), iso(r.billable_to), r.peak_active)
        for r in ordered
        if r.month == month and r.peak_active > 0
    )
    return UsageReport(month=month, endpoint_months=sum(line.units for line in lines), lines=lines)


def read_report(store: UsageReader, month: str, *, authority_id: str | None = None) -> UsageReport:
    """Read the month's records from the store and build its report."""
    metering.parse_month(month)
    return build_report(month, store.list_endpoint_months(month, authority_id=authority_id))


def report_json(report: UsageReport) -> dict[str, Any]:
    """The report as the JSON `cirrus usage --json` prints."""
    return {
        "month": report.month,
        "endpoint_months": report.endpoint_months,
        "endpoints": [
            {
                "id": line.endpoint_id,
                "name": line.name,
                "units": line.units,
                "billable_from": line.billable_from,
                "billable_to": line.billable_to,
                "peak_active": line.peak_active,
            }
            for line in report.lines
        ],
    }


CSV_HEADER = ("month", "id", "name", "units", "billable_from", "billable_to", "peak_active")


def report_csv(report: UsageReport) -> str:
    """The report as CSV: a header, one row per endpoint (the total is the sum of `units`).

    Names that start with `=`, `+`, `-` or `@` are prefixed with `'` so a spreadsheet
    does not run them as formulas (endpoint names come from certificate subjects).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for line in report.lines:
        name = "'" + line.name if line.name[:1] in ("=", "+", "-", "@") else line.name
        writer.writerow(
            (report.month, line.endpoint_id, name, line.units, line.billable_from, line.billable_to, line.peak_active)
        )
    return out.getvalue()
