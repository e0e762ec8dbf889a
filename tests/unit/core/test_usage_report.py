"""`shared.usage`: the report built from endpoint-month records, as JSON and CSV."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.store.base import EndpointMonth
from shared.usage import build_report, report_csv, report_json

UTC = dt.UTC


def _rec(endpoint_id: str, peak: int, *, month: str = "2026-05", name: str = "dev") -> EndpointMonth:
    return EndpointMonth(
        month, endpoint_id, "a", name, dt.datetime(2026, 5, 2, tzinfo=UTC), dt.datetime(2026, 6, 1, tzinfo=UTC), peak
    )


def test_total_is_the_sum_of_one_plus_each_certificate_above_three() -> None:
    # peaks 1, 3, 4, 7 -> 1 + 1 + 2 + 5 = 9; a record of another month is not counted.
    records = [_rec("ep-d", 7), _rec("ep-a", 1), _rec("ep-c", 4), _rec("ep-b", 3), _rec("ep-x", 9, month="2026-04")]
    report = build_report("2026-05", records)
    assert report.endpoint_months == 9
    assert [(line.endpoint_id, line.units) for line in report.lines] == [
        ("ep-a", 1),
        ("ep-b", 1),
        ("ep-c", 2),
        ("ep-d", 5),
    ]
    body = report_json(report)
    assert body["endpoints"][0] == {
        "id": "ep-a",
        "name": "dev",
        "units": 1,
        "billable_from": "2026-05-02T00:00:00Z",
        "billable_to": "2026-06-01T00:00:00Z",
        "peak_active": 1,
    }


def test_csv_has_a_header_and_defuses_formula_names() -> None:
    text = report_csv(build_report("2026-05", [_rec("ep-a", 4, name="=HYPERLINK(1)"), _rec("ep-b", 1, name="a,b")]))
    assert text.splitlines() == [
        "month,id,name,units,billable_from,billable_to,peak_active",
        "2026-05,ep-a,'=HYPERLINK(1),2,2026-05-02T00:00:00Z,2026-06-01T00:00:00Z,4",
        '2026-05,ep-b,"a,b",1,2026-05-02T00:00:00Z,2026-06-01T00:00:00Z,1',
    ]


def test_a_malformed_month_is_refused() -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        build_report("2026/05", [])
