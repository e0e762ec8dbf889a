"""The dashboard's pages: endpoints, one endpoint's lineage, certificates, authorities, provisioners, events.

Each function takes the validated query and returns a `Response`; `shared.dashboard.app`
does sign-in, CSRF and routing. Every value shown goes through `html.e`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from shared.dashboard import listing
from shared.dashboard.html import csv_response, e, page, table, url
from shared.errors import CAError
from shared.linked import revoke as linked_revoke
from shared.model import CertificateRecord
from shared.revocation import ALLOWED_REASONS
from shared.x509.serials import parse_serial

if TYPE_CHECKING:
    from shared.provisioners.registry import Provisioners
    from shared.revocation import Revoker
    from shared.runtime import Services

REASONS = {0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged", 4: "superseded",
           5: "cessationOfOperation", 9: "privilegeWithdrawn", 10: "aACompromise"}


def _ts(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else ""


def _status(status: str) -> str:
    return f'<span class="{e(status)}">{e(status)}</span>'


def _text(query: Mapping[str, str], name: str, limit: int = 200) -> str:
    value = query.get(name, "")
    return value[:limit] if value.isprintable() else ""


def _choice(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = query.get(name, "")
    return value if value in allowed else ""


def _expiry_cursor(after: str, now: dt.datetime) -> tuple[dt.datetime, str]:
    """`(not_after, serial)` from an `after=ISO,serial` cursor; from now when absent or malformed."""
    stamp, _, serial = after.partition(",")
    try:
        start = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return now, ""
    if start.tzinfo is None or not serial.isdigit():
        return now, ""
    return start.astimezone(dt.UTC), serial


def endpoints(s: Services, query: Mapping[str, str], csrf: str) -> Response:
    """Endpoints: search, provisioner/status filters, by id or by expiry, keyset paged; `?format=csv`."""
    now = s.clock.now()
    q = _text(query, "q")
    every = _all_provisioners(s)
    provisioners = tuple(p.ref.id for p in every)
    prov = _choice(query, "provisioner", provisioners)
    status = _choice(query, "status", listing.STATUSES)
    sort = _choice(query, "sort", ("id", "expiry")) or "id"
    after = _text(query, "after", 300)
    rows: list[listing.EndpointRow]
    next_link = ""
    if sort == "expiry":
        start, after_serial = _expiry_cursor(after, now)
        found, cursor = listing.list_by_expiry_across(
            s.store,  # type: ignore[arg-type]
            authority_ids=_authority_ids(s), start=start, after_serial=after_serial,
        )
        rows, seen = [], set()
        for _not_after, _serial, endpoint_id, _authority in found:
            endpoint = s.store.get_endpoint(endpoint_id)
            if endpoint is None or endpoint_id in seen:
                continue
            seen.add(endpoint_id)
            row = listing.endpoint_row(s.store, endpoint, now)
            if (q and q.casefold() not in endpoint.name.casefold()) or (prov and endpoint.provisioner_id != prov):
                continue
            if status and row.status != status:
                continue
            rows.append(row)
        if cursor is not None:
            next_link = url("/endpoints", q=q, provisioner=prov, status=status, sort=sort,
                            after=f"{cursor[0].isoformat()},{cursor[1]}")
    else:
        rows, nxt = listing.list_endpoints(
            s.store, authority_id=_authority_ids(s), now=now, after=after,
            query=q, provisioner_id=prov, status=status,
        )
        if nxt:
            next_link = url("/endpoints", q=q, provisioner=prov, status=status, sort=sort, after=nxt)
    if query.get("format") == "csv":
        return csv_response("endpoints.csv", ["id", "name", "provisioner", "status", "latest_serial", "not_after"], (
            [r.endpoint.id, r.endpoint.name, r.endpoint.provisioner_id, r.status,
             r.latest.serial if r.latest else "", _ts(r.latest.not_after) if r.latest else ""] for r in rows))
    names = {p.ref.id: p.ref.name for p in every}
    prov_options = '<option value="">any</option>' + "".join(
        f'<option value="{e(pid)}"{" selected" if pid == prov else ""}>{e(names[pid])}</option>' for pid in provisioners
    )
    status_options = '<option value="">any</option>' + "".join(
        f'<option value="{e(st)}"{" selected" if st == status else ""}>{e(st)}</option>' for st in listing.STATUSES
    )
    sort_options = "".join(
        f'<option value="{v}"{" selected" if v == sort else ""}>{label}</option>'
        for v, label in (("id", "identifier"), ("expiry", "expiry (soonest first)"))
    )
    form = (
        f'<form method="get" action="{url("/endpoints")}" role="search">'
        f'<label for="q">Name</label><input id="q" name="q" type="search" value="{e(q)}">'
        '<label for="provisioner">Provisioner</label>'
        f'<select id="provisioner" name="provisioner">{prov_options}</select>'
        f'<label for="status">Status</label><select id="status" name="status">{status_options}</select>'
        f'<label for="sort">Sort by</label><select id="sort" name="sort">{sort_options}</select>'
        '<button type="submit">Search</button></form>'
    )
    body_rows = [
        [f'<a href="{url("/endpoints/" + r.endpoint.id)}">{e(r.endpoint.name)}</a>',
         e(names.get(r.endpoint.provisioner_id, r.endpoint.provisioner_id)),
         _status(r.status), e(_ts(r.latest.not_after)) if r.latest else "", e(_ts(r.endpoint.created_at))]
        for r in rows
    ]
    csv_link = url("/endpoints", q=q, provisioner=prov, status=status, sort=sort, after=after, format="csv")
    body = form + table("Endpoints", ["Name", "Provisioner", "Status", "Latest expiry", "Created"], body_rows)
    if not rows:
        body += "<p>No endpoints match" + (" so far." if next_link else ".") + "</p>"
    if next_link:
        # A filtered read stops after `listing.SCAN_LIMIT` endpoints even when the page is not full.
        label = "Next page" if len(rows) >= listing.PAGE_SIZE else "Continue searching"
        body += f'<p><a href="{next_link}" rel="next">{label}</a></p>'
    body += f'<p><a href="{csv_link}">Export this page as CSV</a></p>'
    return page("Endpoints", body, csrf=csrf)


def endpoint(s: Services, endpoint_id: str, csrf: str) -> Response:
    """One endpoint and its certificate lineage as a timeline, oldest first."""
    found = s.store.get_endpoint(endpoint_id)
    if found is None:
        return page("Endpoint not found", "<p>No such endpoint.</p>", csrf=csrf, status=404)
    now = s.clock.now()
    certs = s.store.list_certificates_by_endpoint(found.id)
    items = []
    for c in certs:
        status = listing.certificate_status(s.store, c, now)
        items.append(
            f'<li><a href="{url("/certificates/" + c.serial)}">Certificate {e(c.serial)}</a> '
            f"{_status(status)}<br>{e(c.operation)} by {e(c.provisioner.name)}, issued {e(_ts(c.issued_at))}, "
            f"valid {e(_ts(c.not_before))} to {e(_ts(c.not_after))}"
            + (f", renewed from {e(c.renewed_from)}" if c.renewed_from else "")
            + "</li>"
        )
    body = (
        f"<dl><dt>Identifier</dt><dd>{e(found.id)}</dd><dt>Subject</dt><dd>{e(found.subject_key)}</dd>"
        f"<dt>Provisioner</dt><dd>{e(_provisioner_name(s, found.provisioner_id))}</dd>"
        f"<dt>Created</dt><dd>{e(_ts(found.created_at))}</dd></dl>"
        f'<h2>Certificate lineage</h2><ol class="timeline" aria-label="Certificate lineage">{"".join(items)}</ol>'
    )
    return page(f"Endpoint {found.name}", body, csrf=csrf)


def _provisioner_name(s: Services, provisioner_id: str) -> str:
    found = _all_provisioners(s).by_id(provisioner_id)
    return found.ref.name if found is not None else provisioner_id


def _all_provisioners(s: Services) -> Provisioners:
    """Every hosted authority's provisioners (the default's first), as `/provisioners` lists them."""
    if not s.settings.authorities:
        return s.provisioners
    from shared.authorities import hosted

    return hosted(s).listing


def _record(s: Services, serial: str) -> CertificateRecord | None:
    try:
        return s.store.get_certificate(str(parse_serial(serial)))
    except ValueError:
        return None


def _authority_ids(s: Services) -> list[str]:
    """Every authority whose certificates the deployment records: its own, its further issuing
    authorities (`authorities`), and the linked ones that report here."""
    from shared.linked.registry import linked_authority_ids

    return [s.settings.authority_id, *(a.authority_id for a in s.settings.authorities),
            *linked_authority_ids(s.store)]  # fmt: skip


def _issuing_revoker(s: Services, record: CertificateRecord) -> Revoker | None:
    """The `Revoker` of the hosted authority that issued `record` (None: a linked authority's)."""
    if record.authority_id == s.settings.authority_id:
        return s.revoker
    if not s.settings.authorities:
        return None
    from shared.authorities import hosted

    found = hosted(s).by_id(record.authority_id)
    return found.revoker if found is not None else None


def certificates(s: Services, query: Mapping[str, str], csrf: str) -> Response:
    """Current certificates by expiry (soonest first), keyset paged, with a serial lookup; `?format=csv`."""
    serial = _text(query, "serial", 100)
    if serial:
        record = _record(s, serial)
        if record is not None:
            return certificate(s, record.serial, csrf)
    now = s.clock.now()
    after = _text(query, "after", 300)
    start, after_serial = _expiry_cursor(after, now)
    rows, cursor = listing.list_by_expiry_across(
        s.store, authority_ids=_authority_ids(s), start=start, after_serial=after_serial,  # type: ignore[arg-type]
    )
    statuses = ["revoked" if s.store.get_revocation(r[1]) is not None else "active" for r in rows]
    if query.get("format") == "csv":
        return csv_response("certificates.csv", ["serial", "endpoint_id", "not_after", "status", "authority_id"],
                            ([r[1], r[2], _ts(r[0]), st, r[3]] for r, st in zip(rows, statuses, strict=True)))
    body = (
        f'<form method="get" action="{url("/certificates")}" role="search"><label for="serial">Serial number</label>'
        f'<input id="serial" name="serial" value="{e(serial)}"><button type="submit">Find</button></form>'
    )
    if serial:
        body += f'<p class="error" role="alert">No certificate with serial {e(serial)}.</p>'
    body += table("Current certificates, soonest expiry first", ["Serial", "Endpoint", "Expires", "Status",
                                                                  "Authority"], [
        [f'<a href="{url("/certificates/" + r[1])}">{e(r[1])}</a>',
         f'<a href="{url("/endpoints/" + r[2])}">{e(r[2])}</a>',
         e(_ts(r[0])), _status(st), e(r[3])] for r, st in zip(rows, statuses, strict=True)])
    if cursor is not None:
        nxt = url("/certificates", after=f"{cursor[0].isoformat()},{cursor[1]}")
        body += f'<p><a rel="next" href="{nxt}">Next page</a></p>'
    body += f'<p><a href="{url("/certificates", after=after, format="csv")}">Export this page as CSV</a></p>'
    return page("Certificates", body, csrf=csrf)


def certificate(s: Services, serial: str, csrf: str, *, message: str = "") -> Response:
    """One certificate, with its revocation or a revoke form."""
    record = _record(s, serial)
    if record is None:
        return page("Certificate not found", "<p>No such certificate.</p>", csrf=csrf, status=404)
    revocation = s.store.get_revocation(record.serial)
    status = listing.certificate_status(s.store, record, s.clock.now())
    body = f'<p role="status">{e(message)}</p>' if message else ""
    body += (
        f"<dl><dt>Serial</dt><dd>{e(record.serial)}</dd><dt>Common name</dt><dd>{e(record.common_name)}</dd>"
        f"<dt>Names</dt><dd>{e(', '.join(record.sans))}</dd><dt>Status</dt><dd>{_status(status)}</dd>"
        f"<dt>Valid</dt><dd>{e(_ts(record.not_before))} to {e(_ts(record.not_after))}</dd>"
        f"<dt>Provisioner</dt><dd>{e(record.provisioner.name)} ({e(record.provisioner.type)})</dd>"
        f'<dt>Endpoint</dt><dd><a href="{url("/endpoints/" + record.endpoint_id)}">{e(record.endpoint_id)}</a></dd>'
    )
    if revocation is not None:
        body += (f"<dt>Revoked</dt><dd>{e(_ts(revocation.revoked_at))}, reason "
                 f"{e(REASONS.get(revocation.reason_code, revocation.reason_code))}</dd>")
    own = _issuing_revoker(s, record) is not None
    sent = linked_revoke.delivery(s.store, record.serial) if not own else None
    if sent is not None:
        body += f'<dt>Delivered to linked authority {e(sent.get("link", ""))}</dt><dd id="linked-delivery">'
        body += _delivery_text(sent) + "</dd>"
    body += "</dl>"
    if revocation is None and (own or linked_revoke.revocable_link(s.store, record) is not None):
        codes = [c for c in sorted(ALLOWED_REASONS) if c in REASONS]
        options = "".join(f'<option value="{c}">{e(REASONS[c])}</option>' for c in codes)
        body += (
            f'<h2>Revoke</h2><form method="post" action="{url("/certificates/" + record.serial + "/revoke")}">'
            f'<input type="hidden" name="csrf" value="{e(csrf)}">'
            f'<label for="reason">Reason</label><select id="reason" name="reason">{options}</select>'
            '<button type="submit" class="danger">Revoke…</button></form>'
        )
    return page(f"Certificate {record.serial}", body, csrf=csrf)


def confirm_revoke(s: Services, serial: str, reason: int, csrf: str) -> Response:
    """The confirmation step: says what will happen and posts again with `confirm=yes`."""
    record = _record(s, serial)
    if record is None:
        return page("Certificate not found", "<p>No such certificate.</p>", csrf=csrf, status=404)
    body = (
        f"<p>Revoke certificate {e(record.serial)} ({e(record.common_name)}) with reason "
        f"{e(REASONS.get(reason, reason))}? This cannot be undone; CRLs and OCSP will report it.</p>"
        f'<form method="post" action="{url("/certificates/" + record.serial + "/revoke")}">'
        f'<input type="hidden" name="csrf" value="{e(csrf)}"><input type="hidden" name="reason" value="{reason}">'
        '<input type="hidden" name="confirm" value="yes">'
        '<button type="submit" class="danger">Yes, revoke it</button></form>'
        f'<p><a href="{url("/certificates/" + record.serial)}">Cancel</a></p>'
    )
    return page("Confirm revocation", body, csrf=csrf)


def revoke(s: Services, serial: str, reason: int, subject: str, csrf: str) -> Response:
    """Revoke through the authority's `Revoker` (the same record, event and sinks as `POST /revoke`)."""
    record = _record(s, serial)
    if record is None:
        return page("Certificate not found", "<p>No such certificate.</p>", csrf=csrf, status=404)
    revoker = _issuing_revoker(s, record)  # the authority that issued it (shared.authorities)
    if revoker is None:  # a linked authority's: recorded here, delivered there
        try:
            sent = linked_revoke.LinkedRevoker(store=s.store, clock=s.clock, sinks=s.sinks).revoke(  # type: ignore[arg-type]
                record, reason_code=reason, reason=f"dashboard: {subject}"[:256])
        except CAError as exc:
            return page("Revocation refused", f'<p class="error" role="alert">{e(exc)}</p>', csrf=csrf,
                        status=exc.status)  # fmt: skip
        return certificate(s, record.serial, csrf, message="Certificate revoked here; " + (
            "the linked authority revoked it." if sent.get("state") == "delivered"
            else "delivery to the linked authority failed and will be retried."))  # fmt: skip
    try:
        revoker.revoke(record.serial, reason_code=reason, reason=f"dashboard: {subject}"[:256],
                         provisioner_id="", mtls=False)
    except CAError as exc:
        return page("Revocation refused", f'<p class="error" role="alert">{e(exc)}</p>', csrf=csrf, status=exc.status)
    if s.settings.crl.publish_on_revoke:
        from shared.cli.crl import run_publish

        try:
            run_publish(s)
        except Exception:
            logging.getLogger("cirrus.crl").warning("publish-on-revoke failed; the schedule will retry", exc_info=True)
    return certificate(s, record.serial, csrf, message="Certificate revoked.")


def _delivery_text(sent: Mapping[str, Any]) -> str:
    """A linked revocation's delivery state in words (`shared.linked.revoke`)."""
    state, tries = str(sent.get("state", "")), int(sent.get("attempts", 0))
    if state == "delivered":
        return f'{_status("delivered")} {e(_ts(dt.datetime.fromisoformat(str(sent["deliveredAt"]))))}'
    error = f'; last error: {e(sent.get("lastError"))}' if sent.get("lastError") else ""
    if state == "dead":
        return f'{_status("failed")} after {tries} attempts, no more retries{error}'
    return f'{_status("failed" if tries else "pending")} after {tries} attempts, retried by the sweep{error}'


def provisioners(s: Services, query: Mapping[str, str], csrf: str) -> Response:
    """Every provisioner in config order; `?format=csv`."""
    rows = [[p.ref.name, p.ref.type, p.ref.id] for p in s.provisioners]
    if query.get("format") == "csv":
        return csv_response("provisioners.csv", ["name", "type", "id"], rows)
    body = table("Provisioners", ["Name", "Type", "Identifier"], [[e(c) for c in r] for r in rows])
    body += f'<p><a href="{url("/provisioners", format="csv")}">Export as CSV</a></p>'
    return page("Provisioners", body, csrf=csrf)


def events(s: Services, query: Mapping[str, str], csrf: str) -> Response:
    """The event log from a time (default: the last day), oldest first, paged by time; `?format=csv`."""
    now = s.clock.now()
    since = now - dt.timedelta(days=1)
    raw = _text(query, "since", 40)
    if raw:
        try:
            parsed = dt.datetime.fromisoformat(raw)
            since = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        except ValueError:
            pass
    found = list(s.store.list_events(since=since, limit=listing.PAGE_SIZE + 1))
    page_rows = found[: listing.PAGE_SIZE]
    rows: list[list[Any]] = [[_ts(ev.time), ev.type, ev.subject, ev.id, ev.data_json()] for ev in page_rows]
    if query.get("format") == "csv":
        return csv_response("events.csv", ["time", "type", "subject", "id", "data"], rows)
    body = (
        f'<form method="get" action="{url("/events")}"><label for="since">Since (ISO 8601, UTC)</label>'
        f'<input id="since" name="since" value="{e(since.isoformat())}"><button type="submit">Show</button></form>'
        + table("Events", ["Time", "Type", "Subject", "Identifier", "Data"], [[e(c) for c in r] for r in rows])
    )
    if len(found) > listing.PAGE_SIZE:
        nxt = url("/events", since=found[listing.PAGE_SIZE].time.isoformat())
        body += f'<p><a rel="next" href="{nxt}">Next page</a></p>'
    body += f'<p><a href="{url("/events", since=since.isoformat(), format="csv")}">Export this page as CSV</a></p>'
    return page("Events", body, csrf=csrf)
