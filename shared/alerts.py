"""Expiry alerts: `endpoint.expiring` and `endpoint.expired`.

An endpoint whose NEWEST certificate is within the alert window of its expiry,
and has not been renewed (no newer certificate) nor revoked, raises
`endpoint.expiring`; when it lapses, `endpoint.expired`. The sweep runs this on
a schedule from any number of instances: each alert is claimed once in the
store's token ledger (create-if-absent), so it is raised exactly once.
Only certificates expiring within the horizon are read (an indexed range
query), never every endpoint.

The alert window is per provisioner (`alerts.expiringWithin` in its config),
else the authority's, else one third of the certificate's own lifetime: a 24 h
certificate alerts 8 h before it expires, a 90-day one 30 days before, so the
warning always leaves time for the renewal the lifetime implies.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509

from shared.alert_windows import DEFAULT_HORIZON as DEFAULT_HORIZON
from shared.alert_windows import AlertWindows as AlertWindows
from shared.events.base import (
    AUTHORITY_EXPIRING,
    ENDPOINT_EXPIRED,
    ENDPOINT_EXPIRING,
    EventSink,
    authority_event,
    publish_to_sinks,
)
from shared.model import CertificateRecord, Event
from shared.store.base import CertificateReader, EventLog, RevocationReader, TokenLedger

_log = logging.getLogger(__name__)

# How far back the expired check looks: a sweep that was down this long still reports.
EXPIRED_LOOKBACK = dt.timedelta(days=1)


class ExpiringCertificates(Protocol):
    """The range query the alerts need."""

    def list_certificates_expiring(
        self, authority_id: str, start: dt.datetime, end: dt.datetime, *, limit: int = 1000
    ) -> Sequence[tuple[dt.datetime, str, str]]:
        """`(not_after, serial, endpoint_id)` with start <= not_after < end, by not_after."""
        ...


@dataclass(frozen=True, slots=True)
class AlertStores:
    """The store roles the alerts use."""

    expiring: ExpiringCertificates
    certificates: CertificateReader
    revocations: RevocationReader
    ledger: TokenLedger
    events: EventLog


def _newest_unrenewed(stores: AlertStores, serial: str, endpoint_id: str) -> CertificateRecord | None:
    """The record if `serial` is the endpoint's newest certificate and is not revoked."""
    lineage = stores.certificates.list_certificates_by_endpoint(endpoint_id)
    if not lineage or lineage[-1].serial != serial:
        return None
    return lineage[-1] if stores.revocations.get_revocation(serial) is None else None


def run_expiry_alerts(
    stores: AlertStores,
    *,
    authority_id: str,
    now: dt.datetime,
    windows: AlertWindows | dt.timedelta | None = None,
    sinks: Sequence[EventSink] = (),
    limit: int = 10_000,
) -> list[Event]:
    """Raise the alerts due at `now`; return the events raised by this call.

    `windows` may be a single fixed window (every certificate alike).
    """
    if windows is None:
        windows = AlertWindows()
    elif isinstance(windows, dt.timedelta):
        windows = AlertWindows(default=windows)
    raised: list[Event] = []
    horizon = windows.scan_horizon()
    scans = (
        (ENDPOINT_EXPIRING, now, now + horizon),
        (ENDPOINT_EXPIRED, now - EXPIRED_LOOKBACK, now),
    )
    for kind, start, end in scans:
        for not_after, serial, endpoint_id in stores.expiring.list_certificates_expiring(
            authority_id, start, end, limit=limit
        ):
            newest = _newest_unrenewed(stores, serial, endpoint_id)
            if newest is None:
                continue
            if kind == ENDPOINT_EXPIRING and not_after - now > windows.window_for(newest):
                continue
            # One alert per (kind, certificate), whichever instance gets here first.
            if not stores.ledger.claim(f"alert:{kind}", serial, not_after + EXPIRED_LOOKBACK):
                continue
            raised.append(
                authority_event(
                    authority_id, kind, endpoint_id, now,
                    {"endpointId": endpoint_id, "serial": serial, "notAfter": not_after.isoformat()},
                )
            )  # fmt: skip
    if raised:
        stores.events.append_events(raised)
        publish_to_sinks(sinks, raised, log=_log)
    return raised


#: An authority certificate (root or intermediate) alerts this long before it expires.
AUTHORITY_WINDOW = dt.timedelta(days=90)


def run_authority_alerts(
    certificates: Sequence[x509.Certificate],
    *,
    authority_id: str,
    ledger: TokenLedger,
    events: EventLog,
    now: dt.datetime,
    window: dt.timedelta = AUTHORITY_WINDOW,
    sinks: Sequence[EventSink] = (),
) -> list[Event]:
    """Raise `authority.expiring` once per CA certificate within `window` of its end.

    A CA certificate that lapses strands every certificate under it, and replacing one
    takes a ceremony, so the warning comes months ahead, not a third of its life.
    """
    raised: list[Event] = []
    for cert in certificates:
        not_after = cert.not_valid_after_utc
        if not now <= not_after <= now + window:
            continue
        serial = str(cert.serial_number)
        if not ledger.claim(f"alert:{AUTHORITY_EXPIRING}", serial, not_after + EXPIRED_LOOKBACK):
            continue
        raised.append(
            authority_event(
                authority_id, AUTHORITY_EXPIRING, serial, now,
                {"authorityId": authority_id, "serial": serial, "subject": cert.subject.rfc4514_string(),
                 "notAfter": not_after.isoformat()},
            )
        )  # fmt: skip
    if raised:
        events.append_events(raised)
        publish_to_sinks(sinks, raised, log=_log)
    return raised
