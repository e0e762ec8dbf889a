"""The dashboard's inventory pages: every inventory, and one inventory's entries (paged, CSV export).

Read-only: inventories change through `cirrus inventory` and the admin API, which announce
each change as an event. Entries page by key (`after` = the last key shown), the order every
store keeps, so a page is one range read whatever the inventory's size.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from shared.dashboard.html import csv_response, e, page, table, url
from shared.dashboard.listing import PAGE_SIZE
from shared.inventory.base import InventoryError, check_key, check_name

if TYPE_CHECKING:
    from shared.runtime import Services


def _ts(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def inventories(s: Services, query: Mapping[str, str], csrf: str) -> Response:
    """Every inventory by name; `?format=csv`."""
    found = list(s.store.list_inventories())
    if query.get("format") == "csv":
        return csv_response("inventories.csv", ["name", "kind", "created"],
                            ([i.name, i.kind, _ts(i.created_at)] for i in found))
    rows = [[f'<a href="{url("/inventories/" + i.name)}">{e(i.name)}</a>', e(i.kind), e(_ts(i.created_at))]
            for i in found]
    body = table("Inventories", ["Name", "Kind", "Created"], rows)
    if not found:
        body += "<p>No inventories yet: <code>cirrus inventory create NAME --kind hosts</code> makes one.</p>"
    body += f'<p><a href="{url("/inventories", format="csv")}">Export as CSV</a></p>'
    return page("Inventories", body, csrf=csrf)


def inventory(s: Services, name: str, query: Mapping[str, str], csrf: str) -> Response:
    """One inventory's entries from `after` (a key), `PAGE_SIZE` to a page; `?format=csv` for that page."""
    try:
        check_name(name)
        found = s.store.get_inventory(name)
    except InventoryError:
        found = None
    if found is None:
        return page("Not found", "<p>No such inventory.</p>", csrf=csrf, status=404)
    after = query.get("after", "")
    try:
        if after:
            check_key(after)
    except InventoryError:
        after = ""
    entries = list(s.store.list_inventory_entries(name, after=after, limit=PAGE_SIZE + 1))
    shown = entries[:PAGE_SIZE]
    rows = [[key, json.dumps(entry, ensure_ascii=False, sort_keys=True)] for key, entry in shown]
    if query.get("format") == "csv":
        return csv_response(f"inventory-{name}.csv", ["key", "entry"], rows)
    title = f"Inventory {name}"
    body = (
        f"<p>Kind: {e(found.kind)}; created {e(_ts(found.created_at))}.</p>"
        f'<form method="get" action="{url("/inventories/" + name)}" role="search">'
        f'<label for="after">Start after key</label><input id="after" name="after" value="{e(after)}">'
        '<button type="submit">Show</button></form>'
        + table(f"Entries of {name}", ["Key", "Entry (JSON)"], [[e(k), f"<code>{e(v)}</code>"] for k, v in rows])
    )
    if not shown:
        body += "<p>No entries here.</p>"
    if len(entries) > PAGE_SIZE:
        body += f'<p><a rel="next" href="{url("/inventories/" + name, after=shown[-1][0])}">Next page</a></p>'
    body += (f'<p><a href="{url("/inventories/" + name, after=after, format="csv")}">Export this page as CSV</a>'
             f' &middot; <a href="{url("/inventories")}">All inventories</a></p>')
    return page(title, body, csrf=csrf)
