"""The dashboard's inventory pages (issue 17 item 4, issue 15 item 4) through the WSGI app, checked on the DOM.

The checks an accessibility checker would make on these pages (labelled controls, table
captions and column scopes, language), escaping of hostile keys and values, keyset paging
that shows every entry once, CSV export with spreadsheet formulas neutralised.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html.parser import HTMLParser

from werkzeug.test import Client

from shared.inventory.base import Inventory
from shared.runtime import Services
from tests.unit.dashboard.test_dashboard import BASE, sign_in

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class _Dom(HTMLParser):
    """The few DOM facts the checks need: inputs with ids, label targets, tables with captions, th scopes."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.tables = 0
        self.captions = 0
        self.th_without_scope = 0
        self.lang = ""
        self.next_links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang") or ""
        elif tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.inputs.append(a)
        elif tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        elif tag == "table":
            self.tables += 1
        elif tag == "caption":
            self.captions += 1
        elif tag == "th" and a.get("scope") != "col":
            self.th_without_scope += 1
        elif tag == "a" and a.get("rel") == "next":
            self.next_links.append(str(a.get("href")))


def _dom(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    assert dom.lang == "en"
    assert all(i.get("id") in dom.label_for or i.get("aria-label") for i in dom.inputs), dom.inputs
    assert dom.tables == dom.captions and dom.th_without_scope == 0
    return dom


def _keys(text: str) -> list[str]:
    return re.findall(r"<tr><td>([^<]*)</td><td><code>", text)


def test_inventories_list_entries_paging_and_csv(api: Client, services: Services) -> None:
    store = services.store
    store.create_inventory(Inventory("hosts", "hosts", T0))
    store.create_inventory(Inventory("people", "people", T0))
    store.put_inventory_entries("hosts", {f"vm-{i:03d}": {"workload": f"w{i}"} for i in range(120)})
    store.put_inventory_entries("people", {"<script>alert(1)</script>": {"uid": "x"}, "=SUM(A1)": {"uid": "y"}})
    sign_in(api, services)

    listing = api.get(f"{BASE}/dashboard/inventories")
    assert listing.status_code == 200 and listing.headers["Content-Security-Policy"]
    _dom(listing.text)
    assert 'href="/dashboard/inventories/hosts"' in listing.text and ">people</a>" in listing.text
    assert '<a href="/dashboard/inventories">Inventories</a>' in listing.text  # in the navigation
    exported = api.get(f"{BASE}/dashboard/inventories?format=csv")
    assert exported.mimetype == "text/csv"
    assert list(csv.reader(io.StringIO(exported.text)))[1:] == [["hosts", "hosts", "2026-01-01 00:00:00Z"],
                                                                ["people", "people", "2026-01-01 00:00:00Z"]]

    seen: list[str] = []
    path = f"{BASE}/dashboard/inventories/hosts"
    while True:
        r = api.get(path)
        assert r.status_code == 200
        dom = _dom(r.text)
        keys = _keys(r.text)
        assert len(keys) <= 50
        seen.extend(keys)
        if not dom.next_links:
            break
        path = BASE + dom.next_links[0].replace("&amp;", "&")
    assert seen == [f"vm-{i:03d}" for i in range(120)]  # every entry once, in key order

    r = api.get(f"{BASE}/dashboard/inventories/hosts?after=vm-049&format=csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["key", "entry"] and rows[1] == ["vm-050", '{"workload": "w50"}'] and len(rows) == 51

    hostile = api.get(f"{BASE}/dashboard/inventories/people")
    assert "<script>" not in hostile.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile.text
    rows = list(csv.reader(io.StringIO(api.get(f"{BASE}/dashboard/inventories/people?format=csv").text)))
    assert rows[1:] == [["<script>alert(1)</script>", '{"uid": "x"}'], ["'=SUM(A1)", '{"uid": "y"}']]


def test_unknown_or_malformed_inventories_and_no_session(api: Client, services: Services) -> None:
    assert api.get(f"{BASE}/dashboard/inventories").status_code == 303  # no session: to sign-in
    sign_in(api, services)
    assert api.get(f"{BASE}/dashboard/inventories/ghost").status_code == 404
    assert api.get(f"{BASE}/dashboard/inventories/Bad%20Name").status_code == 404
    assert api.get(f"{BASE}/dashboard/inventories/a/b").status_code == 404
    services.store.create_inventory(Inventory("hosts", "hosts", T0))
    r = api.get(f"{BASE}/dashboard/inventories/hosts?after=%00%01")  # a malformed cursor starts at the beginning
    assert r.status_code == 200 and "No entries here." in r.text
    empty = api.get(f"{BASE}/dashboard/inventories")
    assert "No inventories yet" not in empty.text
