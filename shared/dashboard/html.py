"""HTML building for the dashboard: the page frame, tables, forms, headers, the stylesheet.

Why string building rather than a template engine: the pages are a handful of
tables and forms; `html.escape` on every interpolated value (the `e` helper) is
all the safety a template engine would add here, and it keeps Jinja2 out of the
Cloud Function bundle. No JavaScript at all: every action is a form post.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from html import escape
from urllib.parse import urlencode

from werkzeug.wrappers import Response

BASE = "/dashboard"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; img-src 'self'; script-src 'none'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Strict-Transport-Security": "max-age=31536000",
}

# Colours meet WCAG AA (4.5:1) on white: #1a1a1a text, #0b57d0 links, #a50e0e errors.
STYLESHEET = """\
body{font-family:system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0;line-height:1.4}
header{background:#12355b;color:#fff;padding:.5rem 1rem}
header a{color:#fff;margin-right:1rem}
header a:focus,a:focus,button:focus,input:focus,select:focus{outline:3px solid #f9ab00;outline-offset:2px}
main{padding:1rem;max-width:80rem}
a{color:#0b57d0}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border-bottom:1px solid #c4c7c5;text-align:left;padding:.3rem .5rem;vertical-align:top}
th{background:#eef2f7}
form.inline{display:inline}
label{margin-right:.3rem}
input,select,button{font:inherit;padding:.2rem .4rem;margin-right:.6rem}
button{background:#0b57d0;color:#fff;border:0;border-radius:3px;cursor:pointer}
button.danger{background:#a50e0e}
.revoked,.failed{color:#a50e0e;font-weight:bold}
.delivered{color:#146c2e}.pending{color:#5f4b00}
.expired{color:#5f4b00}
.active{color:#146c2e}
ol.timeline{list-style:none;border-left:3px solid #12355b;padding-left:1rem}
ol.timeline li{margin:.6rem 0}
.error{color:#a50e0e}
svg.chart{max-width:48rem;height:auto}
svg.chart .bar{fill:#0b57d0}svg.chart .bar.selected{fill:#12355b}
svg.chart .axis{stroke:#1a1a1a}svg.chart .grid{stroke:#c4c7c5;stroke-dasharray:2 3}
svg.chart text{fill:#1a1a1a;font-size:11px}
figure{margin:1rem 0}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:.5rem;background:#fff;color:#0b57d0;padding:.3rem}
"""


def e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return escape(str(value), quote=True)


def url(path: str, **query: object) -> str:
    """A dashboard URL with its query (empty values dropped), escaped for an attribute."""
    params = {k: str(v) for k, v in query.items() if v not in (None, "")}
    tail = ("?" + urlencode(params)) if params else ""
    return e(f"{BASE}{path}{tail}")


NAV = (("/endpoints", "Endpoints"), ("/certificates", "Certificates"), ("/authorities", "Authorities"),
       ("/provisioners", "Provisioners"), ("/inventories", "Inventories"), ("/events", "Events"), ("/usage", "Usage"))


def page(title: str, body: str, *, signed_in: bool = True, csrf: str = "", status: int = 200) -> Response:
    """A whole page: the frame, the navigation and `body` (already escaped HTML)."""
    nav = ""
    if signed_in:
        links = "".join(f'<a href="{url(p)}">{e(label)}</a>' for p, label in NAV)
        signout = (
            f'<form class="inline" method="post" action="{url("/signout")}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}"><button type="submit">Sign out</button></form>'
        )
        nav = f'<nav aria-label="Main">{links}{signout}</nav>'
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} - Cirrus CA</title>"
        f'<link rel="stylesheet" href="{url("/static/style.css")}"></head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f"<header><strong>Cirrus CA</strong> {nav}</header>"
        f'<main id="main"><h1>{e(title)}</h1>{body}</main></body></html>'
    )
    return respond(doc, status=status)


def respond(body: str | bytes, *, status: int = 200, content_type: str = "text/html; charset=utf-8") -> Response:
    """A response with the dashboard's security headers."""
    response = Response(body, status=status, content_type=content_type)
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response


def redirect(location: str, *, status: int = 303) -> Response:
    """A redirect (303 after a form post, so a reload does not repeat it)."""
    response = respond("", status=status)
    response.headers["Location"] = location
    return response


def table(caption: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of already-escaped cells, with a caption and column scopes for screen readers."""
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def csv_response(filename: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
    """A CSV download; cells that a spreadsheet would run as a formula get a leading quote."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_cell(c) for c in row])
    response = respond(out.getvalue(), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
