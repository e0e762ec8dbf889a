"""Usage in endpoint-months: the written scenarios of docs/usage.md, on every store backend.

Each test records certificates and revocations through the store protocol (long
timelines: a month of renewals every 12 hours) and reads the month's report built from
the store's endpoint-month records. The expected numbers are worked out by hand in each
test's comments from the rule in `shared.metering`: an endpoint counts
`1 + max(0, peak - 3)` in every month in which one of its certificates is active, where a
certificate is active over `[max(not_before, issued_at), min(not_after, revoked_at))`.
"""

from __future__ import annotations

import datetime as dt

from test_store_contract import run_threads

from shared.endpoints import endpoint_for_sign
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef, Revocation, subject_key
from shared.store.base import MonthTotal, Store, UsageQueries
from shared.usage import UsageReport, read_report, report_json

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
MINUTE = dt.timedelta(minutes=1)
JWK = ProvisionerRef(id="prov-jwk", name="devices", type="JWK")
ACME = ProvisionerRef(id="prov-acme", name="acme", type="ACME")


def at(month: int, day: int, hour: int = 0, year: int = 2026) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


def endpoint(endpoint_id: str, name: str) -> Endpoint:
    return Endpoint(
        id=endpoint_id, authority_id="auth-1", provisioner_id=JWK.id, subject_key=name, name=name, created_at=at(1, 1)
    )


def issue(
    store: Store,
    serial: str,
    endpoint_id: str,
    issued_at: dt.datetime,
    lifetime: dt.timedelta,
    *,
    name: str = "",
    backdate: dt.timedelta = MINUTE,
    renewed_from: str | None = None,
    provisioner: ProvisionerRef = JWK,
    new_endpoint: Endpoint | None = None,
) -> None:
    """Record one certificate as the authority does: `not_before` backdated a minute, lifetime from issue."""
    name = name or endpoint_id
    store.record_issuance(
        CertificateRecord(
            serial=serial,
            authority_id="auth-1",
            kind=CertificateKind.X509,
            der=b"\x30\x03" + serial.encode(),
            not_before=issued_at - backdate,
            not_after=issued_at + lifetime,
            provisioner=provisioner,
            endpoint_id=endpoint_id,
            subject_key=name,
            common_name=name,
            sans=(name,),
            issued_at=issued_at,
            renewed_from=renewed_from,
            operation="renew" if renewed_from else "sign",
        ),
        new_endpoint=new_endpoint
        if new_endpoint is not None
        else (None if renewed_from else endpoint(endpoint_id, name)),
    )


def revoke(store: Store, serial: str, when: dt.datetime, not_after: dt.datetime) -> None:
    store.revoke(Revocation(serial=serial, authority_id="auth-1", revoked_at=when, not_after=not_after))


def lines(report: UsageReport) -> dict[str, tuple[int, int]]:
    """endpoint id -> (units, peak_active)."""
    return {line.endpoint_id: (line.units, line.peak_active) for line in report.lines}


def z(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def test_one_thirty_day_certificate_bills_the_same_as_sixty_one_day_renewals(store: Store) -> None:
    # January 2026 has 31 days.
    # Device A: one 30-day certificate issued Jan 1 00:00, expires Jan 31 00:00 -> active only in
    # January, never more than 1 at once: 1 endpoint-month.
    issue(store, "100", "ep-a", at(1, 1), 30 * DAY, name="device-a")
    # Device B: sixty one-day certificates, renewed every 12 hours: certificate k is issued at
    # Jan 1 + 12k h (k = 0..59) and expires 24 h later. At any instant in [12k h, 12k+12 h)
    # certificates k-1 and k are active (k-2 expired exactly at 12k h; its successor's
    # backdated not_before does not count before it was issued): peak 2 <= 3, so 1
    # endpoint-month. The last one (k = 59) is issued Jan 30 12:00 and expires Jan 31 12:00,
    # so February owes nothing.
    previous = None
    for k in range(60):
        serial = str(200 + k)
        issue(store, serial, "ep-b", at(1, 1) + 12 * k * HOUR, DAY, name="device-b", renewed_from=previous)
        previous = serial

    january = read_report(store, "2026-01")
    assert lines(january) == {"ep-a": (1, 1), "ep-b": (1, 2)}
    assert january.endpoint_months == 2
    body = report_json(january)
    assert body["month"] == "2026-01"
    assert body["endpoint_months"] == 2
    b = next(e for e in body["endpoints"] if e["id"] == "ep-b")
    assert b == {
        "id": "ep-b",
        "name": "device-b",
        "units": 1,
        "billable_from": "2026-01-01T00:00:00Z",
        "billable_to": "2026-01-31T12:00:00Z",
        "peak_active": 2,
    }
    a = next(e for e in body["endpoints"] if e["id"] == "ep-a")
    assert (a["billable_from"], a["billable_to"]) == ("2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z")
    assert read_report(store, "2026-02").endpoint_months == 0
    assert read_report(store, "2025-12").endpoint_months == 0


def test_four_and_five_concurrently_active_certificates(store: Store) -> None:
    # March 2026. ep-4: four certificates issued Mar 2 at 00:00, 01:00, 02:00, 03:00, each for
    # 10 days: from 03:00 on Mar 2 all four are active -> peak 4 -> 1 + (4 - 3) = 2.
    for i in range(4):
        issue(store, f"40{i}", "ep-4", at(3, 2, i), 10 * DAY, renewed_from=None if i == 0 else f"40{i - 1}")
    # ep-5: five such certificates -> peak 5 -> 1 + (5 - 3) = 3.
    for i in range(5):
        issue(store, f"50{i}", "ep-5", at(3, 2, i), 10 * DAY, renewed_from=None if i == 0 else f"50{i - 1}")
    # ep-seq: five one-day certificates back to back (each issued when the last expires):
    # five in the month but never two at once -> peak 1 -> 1.
    for i in range(5):
        issue(store, f"60{i}", "ep-seq", at(3, 2 + i), DAY, renewed_from=None if i == 0 else f"60{i - 1}")
    march = read_report(store, "2026-03")
    assert lines(march) == {"ep-4": (2, 4), "ep-5": (3, 5), "ep-seq": (1, 1)}
    assert march.endpoint_months == 2 + 3 + 1
    # The store's own aggregate (the dashboard's chart) agrees without reading the records:
    # three endpoints, 2 + 3 + 1 endpoint-months; none in February.
    assert isinstance(store, UsageQueries)
    assert store.usage_total("2026-03") == MonthTotal("2026-03", 3, 6)
    assert store.usage_total("2026-03", authority_id="auth-1") == MonthTotal("2026-03", 3, 6)
    assert store.usage_total("2026-03", authority_id="other") == MonthTotal("2026-03", 0, 0)
    assert store.usage_total("2026-02") == MonthTotal("2026-02", 0, 0)
    # And its pages by endpoint id: two, then the rest after the last id shown.
    first = store.page_endpoint_months("2026-03", limit=2)
    assert [(r.endpoint_id, r.peak_active) for r in first] == [("ep-4", 4), ("ep-5", 5)]
    rest = store.page_endpoint_months("2026-03", after=first[-1].endpoint_id, limit=2)
    assert [r.endpoint_id for r in rest] == ["ep-seq"] and rest[0].month == "2026-03"
    assert store.page_endpoint_months("2026-03", after="ep-seq") == []
    assert store.page_endpoint_months("2026-02") == []


def test_revocation_mid_month_keeps_the_past_peak_and_lowers_the_future(store: Store) -> None:
    # ep-r: five certificates issued Apr 1 01:00..05:00, each for 80 days (to Jun 20..).
    # Before any revocation: April, May and June each have peak 5 -> 3 endpoint-months each.
    for i in range(5):
        issue(store, f"70{i}", "ep-r", at(4, 1, 1 + i), 80 * DAY, renewed_from=None if i == 0 else f"70{i - 1}")
    assert lines(read_report(store, "2026-05")) == {"ep-r": (3, 5)}
    # One is revoked on Apr 15: five were active at once on Apr 1-15, so April keeps peak 5
    # (3 units); May and June now see only four at once -> 1 + (4 - 3) = 2 each.
    revoke(store, "704", at(4, 15), at(4, 1, 5) + 80 * DAY)
    # ep-one: a single certificate Apr 10 -> Jul 9, revoked Apr 20: billable in April only,
    # until the revocation; May, June and July owe nothing for it.
    issue(store, "800", "ep-one", at(4, 10), 90 * DAY)
    revoke(store, "800", at(4, 20), at(4, 10) + 90 * DAY)
    april = read_report(store, "2026-04")
    assert lines(april) == {"ep-r": (3, 5), "ep-one": (1, 1)}
    one = next(line for line in april.lines if line.endpoint_id == "ep-one")
    assert (one.billable_from, one.billable_to) == (z(at(4, 10)), z(at(4, 20)))
    assert lines(read_report(store, "2026-05")) == {"ep-r": (2, 4)}
    assert lines(read_report(store, "2026-06")) == {"ep-r": (2, 4)}
    # Revoking the remaining four on May 10: May keeps its peak of 4 (before May 10), and
    # June has nothing active any more, so June's record goes.
    for i in range(4):
        revoke(store, f"70{i}", at(5, 10), at(4, 1, 1 + i) + 80 * DAY)
    may = read_report(store, "2026-05")
    assert lines(may) == {"ep-r": (2, 4)}
    assert may.lines[0].billable_to == z(at(5, 10))
    assert read_report(store, "2026-06").endpoint_months == 0
    # Totals after revocations: April 3 + 1, May 2 (ep-r's peak 4), June nothing.
    assert isinstance(store, UsageQueries)
    assert [store.usage_total(m).endpoint_months for m in ("2026-04", "2026-05", "2026-06")] == [4, 2, 0]


def test_a_certificate_spanning_two_months_counts_in_each(store: Store) -> None:
    # One 30-day certificate issued Jan 20 12:00 (not_before backdated to 11:59, but it counts
    # from its issue), expiring Feb 19 12:00: active in January (Jan 20 12:00 - Feb 1 00:00)
    # and in February (Feb 1 00:00 - Feb 19 12:00): 1 endpoint-month in each, 2 in all.
    issue(store, "900", "ep-span", at(1, 20, 12), 30 * DAY)
    jan, feb = read_report(store, "2026-01"), read_report(store, "2026-02")
    assert lines(jan) == {"ep-span": (1, 1)} and lines(feb) == {"ep-span": (1, 1)}
    assert (jan.lines[0].billable_from, jan.lines[0].billable_to) == (z(at(1, 20, 12)), z(at(2, 1)))
    assert (feb.lines[0].billable_from, feb.lines[0].billable_to) == (z(at(2, 1)), z(at(2, 19, 12)))
    assert read_report(store, "2026-03").endpoint_months == 0
    # A certificate issued 30 s after midnight on Mar 1 with the usual one-minute backdate
    # (not_before Feb 28 23:59:30) does not bill February: it did not exist yet.
    issue(store, "901", "ep-midnight", at(3, 1) + dt.timedelta(seconds=30), DAY)
    assert lines(read_report(store, "2026-02")) == {"ep-span": (1, 1)}
    assert lines(read_report(store, "2026-03")) == {"ep-midnight": (1, 1)}


def test_subject_grouping_when_renewal_is_disabled(store: Store) -> None:
    # An ACME provisioner (renewal disabled): certificates whose subject is the same
    # (case and order ignored) share one endpoint. Three 90-day certificates for
    # example.com + www.example.com, each re-ordered 60 days after the last (Jan 1, Mar 2,
    # May 1): each overlaps the next by 30 days, so at most 2 at once.
    subjects = [("www.example.com", ["example.com"]), ("EXAMPLE.com", ["www.Example.com"]), ("example.com", [])]
    starts = [at(1, 1), at(3, 2), at(5, 1)]
    ids = set()
    for i, ((cn, sans), start) in enumerate(zip(subjects, starts, strict=True)):
        key = subject_key(cn, [*sans, "www.example.com"] if i == 2 else sans)
        ep = endpoint_for_sign(
            authority_id="auth-1",
            provisioner_id=ACME.id,
            subject_key=key,
            name=cn.lower(),
            renewal_enabled=False,
            now=start,
        )
        ids.add(ep.id)
        issue(store, f"10{i}", ep.id, start, 90 * DAY, name=cn.lower(), provisioner=ACME, new_endpoint=ep)
    assert len(ids) == 1  # one endpoint for the three
    (grouped,) = ids
    # A different subject is a different endpoint; with renewal enabled, two fresh signs of
    # the same subject are two endpoints (each /sign starts one).
    other = endpoint_for_sign(
        authority_id="auth-1",
        provisioner_id=ACME.id,
        subject_key=subject_key("api.example.com", []),
        name="api.example.com",
        renewal_enabled=False,
        now=at(3, 1),
    )
    issue(store, "110", other.id, at(3, 1), 90 * DAY, name="api.example.com", provisioner=ACME, new_endpoint=other)
    signed = [
        endpoint_for_sign(
            authority_id="auth-1",
            provisioner_id=JWK.id,
            subject_key=subject_key("device", []),
            name="device",
            renewal_enabled=True,
            now=at(3, 3),
        )
        for _ in range(2)
    ]
    for i, ep in enumerate(signed):
        issue(store, f"12{i}", ep.id, at(3, 3), 10 * DAY, name="device", new_endpoint=ep)
    # January and February: only the grouped endpoint (1). March: grouped (certificates 0
    # and 1 overlap Mar 2-31: peak 2) + api.example.com + two device endpoints = 4.
    assert lines(read_report(store, "2026-02")) == {grouped: (1, 1)}
    march = read_report(store, "2026-03")
    assert lines(march) == {grouped: (1, 2), other.id: (1, 1), signed[0].id: (1, 1), signed[1].id: (1, 1)}
    assert march.endpoint_months == 4
    assert {line.name for line in march.lines} == {"www.example.com", "api.example.com", "device"}


def test_a_gap_with_nothing_active_is_not_billed_and_late_reports_count(store: Store) -> None:
    # ep-gap: a certificate Jan 5-15, then nothing until one Mar 5-15: billed January and
    # March, not February.
    issue(store, "1300", "ep-gap", at(1, 5), 10 * DAY)
    issue(store, "1301", "ep-gap", at(3, 5), 10 * DAY, renewed_from="1300")
    assert lines(read_report(store, "2026-01")) == {"ep-gap": (1, 1)}
    assert read_report(store, "2026-02").endpoint_months == 0
    assert lines(read_report(store, "2026-03")) == {"ep-gap": (1, 1)}
    # Certificates reported late (a linked authority), out of order: three more (Jan 6-10, 7-11,
    # 8-12) alongside the first: all four active Jan 8-10 -> January's peak becomes 4 (2 units); the February
    # one is a certificate of its own that fills the gap.
    for i, day in enumerate((6, 7, 8)):
        issue(store, f"131{i}", "ep-gap", at(1, day), 4 * DAY, renewed_from="1300")
    issue(store, "1320", "ep-gap", at(2, 10), DAY, renewed_from="1300")
    assert lines(read_report(store, "2026-01")) == {"ep-gap": (2, 4)}
    assert lines(read_report(store, "2026-02")) == {"ep-gap": (1, 1)}


def test_concurrent_issuances_to_one_endpoint_count_every_certificate(store: Store) -> None:
    # Six certificates for one endpoint recorded at once from six threads, all active
    # Mar 2 12:00 - Mar 9: peak 6 -> 1 + (6 - 3) = 4. A record updated outside the
    # issuance's atomic write would lose some of them and show a lower peak.
    issue(store, "1400", "ep-busy", at(3, 2), 7 * DAY)
    run_threads(5, lambda i: issue(store, f"141{i}", "ep-busy", at(3, 2, 12), 7 * DAY, renewed_from="1400"))
    assert lines(read_report(store, "2026-03")) == {"ep-busy": (4, 6)}
