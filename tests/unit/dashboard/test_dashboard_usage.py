"""The dashboard's usage page: month picking, the month's lines (paged, CSV), the year's SVG chart.

Usage records are written through the store as issuance writes them (`record_issuance`),
with certificates placed in chosen months; the expected numbers follow the metering rule
(an endpoint counts `1 + max(0, peak - 3)` in each month it has an active certificate).
The page is read with the standard library's HTML parser and the chart as XML.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from werkzeug.test import Client

from shared.dashboard import listing, usage_page
from shared.dashboard.chart import bar_chart
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef
from shared.runtime import Services
from tests.unit.dashboard.test_dashboard import BASE, sign_in

UTC = dt.UTC
SVG = "{http://www.w3.org/2000/svg}"
PROV = ProvisionerRef(id="prov-jwk", name="devices", type="JWK")


class Tables(HTMLParser):
    """Every table's caption and cell texts, and every link's href and text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.links: list[tuple[str, str]] = []
        self._caption: str | None = None
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self._href: str | None = None
        self._text: list[str] = []
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._rows, self._caption = [], ""
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self._href, self._text = dict(attrs).get("href") or "", []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._rows is not None:
            self.tables[self._caption or ""] = [r for r in self._rows if r]
            self._rows = None
        elif tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None and self._rows:
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self._caption = (self._caption or "") + data
        if self._cell is not None:
            self._cell.append(data)
        if self._href is not None:
            self._text.append(data)


def parse(text: str) -> Tables:
    p = Tables()
    p.feed(text)
    return p


def record(services: Services, serial: str, endpoint_id: str, issued: dt.datetime, days: float) -> None:
    """One certificate of `endpoint_id`, active from `issued` for `days` (the endpoint made on first use)."""
    store = services.store
    new = None
    if store.get_endpoint(endpoint_id) is None:
        new = Endpoint(id=endpoint_id, authority_id=services.settings.authority_id, provisioner_id=PROV.id,
                       subject_key=endpoint_id, name=f"{endpoint_id}.example", created_at=issued)  # fmt: skip
    store.record_issuance(CertificateRecord(
        serial=serial, authority_id=services.settings.authority_id, kind=CertificateKind.X509,
        der=b"\x30\x03" + serial.encode(), not_before=issued, not_after=issued + dt.timedelta(days=days),
        provisioner=PROV, endpoint_id=endpoint_id, subject_key=endpoint_id, common_name=f"{endpoint_id}.example",
        sans=(f"{endpoint_id}.example",), issued_at=issued,
    ), new_endpoint=new)  # fmt: skip


def this_month(services: Services, back: int = 0) -> tuple[str, dt.datetime]:
    """The month `back` months before the current one, and its 2nd day at noon."""
    now = services.clock.now().astimezone(UTC)
    year, month = now.year, now.month - back
    while month < 1:
        year, month = year - 1, month + 12
    return f"{year:04d}-{month:02d}", dt.datetime(year, month, 2, 12, tzinfo=UTC)


@pytest.fixture
def usage_data(services: Services) -> dict[str, str]:
    """Three months of usage, worked out by hand:

    - two months ago: ep-a with one 5-day certificate -> 1 endpoint-month;
    - last month: ep-a again (1) and ep-five with five 5-day certificates at once -> 1 + (5 - 3) = 3; total 4;
    - this month: nothing yet; eleven months ago and before: nothing.
    """
    m2, d2 = this_month(services, 2)
    m1, d1 = this_month(services, 1)
    record(services, "1001", "ep-a", d2, 5)
    record(services, "1002", "ep-a", d1, 5)
    for i in range(5):
        record(services, f"200{i}", "ep-five", d1 + dt.timedelta(hours=i), 5)
    return {"m2": m2, "m1": m1, "m0": this_month(services)[0]}


def test_usage_page_shows_the_month_its_lines_and_a_year_chart(
    api: Client, services: Services, usage_data: dict[str, str]
) -> None:
    sign_in(api, services)
    m1 = usage_data["m1"]
    r = api.get(f"{BASE}/dashboard/usage?month={m1}")
    assert r.status_code == 200 and r.headers["Content-Security-Policy"].startswith("default-src 'self'")
    doc = parse(r.text)
    assert re.search(rf"<strong>4</strong> endpoint-months in {m1} from 2 billable endpoints", r.text)
    lines = doc.tables[f"Endpoints billed in {m1}"]
    assert lines[0] == ["Endpoint", "Name", "Endpoint-months", "Peak active", "Billable from", "Billable to"]
    assert [(row[0], row[2], row[3]) for row in lines[1:]] == [("ep-a", "1", "1"), ("ep-five", "3", "5")]
    # The chart's numbers as a table: twelve months ending with this one, oldest first.
    figures = doc.tables["Endpoint-months per month (the chart's numbers)"]
    assert len(figures) == 1 + 12 and figures[-1][0] == usage_data["m0"]
    by_month = {row[0]: (row[1], row[2]) for row in figures[1:]}
    assert by_month[usage_data["m2"]] == ("1", "1") and by_month[m1] == ("2", "4") and by_month[usage_data["m0"]] == (
        "0", "0")
    assert sum(int(v[1]) for v in by_month.values()) == 5
    # The months with data link to their page; the default is the current month.
    month_links = [text for href, text in doc.links if "/dashboard/usage?month=" in href and text[:2] == "20"]
    assert month_links == [m1, usage_data["m2"]]
    # The SVG: well-formed, titled and described, one bar per month with the same values.
    svg_text = re.search(r"<svg .*?</svg>", r.text, re.S)
    assert svg_text is not None
    svg = ET.fromstring(svg_text.group(0).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    assert svg.get("role") == "img"
    assert svg.findtext(f"{SVG}title", "").startswith("Endpoint-months per month")
    assert f"{m1}: 4" in svg.findtext(f"{SVG}desc", "")
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == 12
    assert [b.findtext(f"{SVG}title") for b in bars if b.get("class") == "bar selected"] == [f"{m1}: 4"]
    heights = {b.findtext(f"{SVG}title", "").split(":")[0]: float(b.get("height", "0")) for b in bars}
    assert heights[m1] == pytest.approx(4 * heights[usage_data["m2"]]) and heights[usage_data["m0"]] == 0


def test_usage_defaults_to_the_current_month_and_exports_csv(
    api: Client, services: Services, usage_data: dict[str, str]
) -> None:
    sign_in(api, services)
    r = api.get(f"{BASE}/dashboard/usage")
    assert r.status_code == 200 and f"<strong>0</strong> endpoint-months in {usage_data['m0']}" in r.text
    assert f'value="{usage_data["m0"]}"' in r.text  # the picker shows the month shown
    out = api.get(f"{BASE}/dashboard/usage?month={usage_data['m1']}&format=csv")
    assert out.status_code == 200 and out.headers["Content-Type"].startswith("text/csv")
    assert f'filename="usage-{usage_data["m1"]}.csv"' in out.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(out.text)))
    assert rows[0] == ["month", "id", "name", "units", "billable_from", "billable_to", "peak_active"]
    assert [(r[1], r[3]) for r in rows[1:]] == [("ep-a", "1"), ("ep-five", "3")]


def test_usage_lines_are_paged_by_endpoint_id(api: Client, services: Services) -> None:
    month, day = this_month(services, 1)
    count = listing.PAGE_SIZE + 3
    for i in range(count):
        record(services, str(5000 + i), f"ep-{i:03d}", day, 3)
    sign_in(api, services)
    first = parse(api.get(f"{BASE}/dashboard/usage?month={month}").text)
    rows = first.tables[f"Endpoints billed in {month}"][1:]
    nxt = [href for href, text in first.links if text == "Next page"]
    assert len(rows) == listing.PAGE_SIZE and len(nxt) == 1
    second = parse(api.get(nxt[0].replace("&amp;", "&")).text)
    rest = second.tables[f"Endpoints billed in {month}"][1:]
    assert [r[0] for r in rows + rest] == [f"ep-{i:03d}" for i in range(count)]
    assert not [href for href, text in second.links if text == "Next page"]


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-01", "2026-00", "abcd-ef", "2026-01-01", "\uff12\uff10\uff12\uff16-\uff10\uff11"])
def test_a_malformed_month_is_a_400(api: Client, services: Services, month: str) -> None:
    sign_in(api, services)
    for suffix in ("", "&format=csv"):
        r = api.get(f"{BASE}/dashboard/usage", query_string=f"month={month}{suffix}")
        assert r.status_code == 400, (month, suffix)
        assert "must be written YYYY-MM" in r.text and "Traceback" not in r.text


def test_usage_page_needs_a_session(api: Client) -> None:
    r = api.get(f"{BASE}/dashboard/usage?month=2026-01&format=csv")
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard/signin"


def test_months_ending_and_the_chart_scale() -> None:
    assert usage_page.months_ending("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]
    assert usage_page.months_ending("0001-02", 12) == ["0001-01", "0001-02"]
    svg = bar_chart(chart_id="c", title="t", desc="d", bars=[("a", 0), ("b", 7)])
    root = ET.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))
    ticks = [t.text for t in root.findall(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks == ["0", "5", "10"]  # 7 rounds up to a scale of 10
    empty = bar_chart(chart_id="c", title="t", desc="d", bars=[("a", 0)])
    assert 'height="0.0"' in empty
