"""Expiry alerts: `endpoint.expiring` and `endpoint.expired` (DESIGN.md s.1).

An endpoint whose NEWEST certificate is within the alert window of its expiry,
and has not been renewed (no newer certificate) nor revoked, raises
`endpoint.expiring`; when it lapses, `endpoint.expired`. The sweep runs this on
a schedule from any number of instances: each alert is claimed once in the
store's token ledger (create-if-absent), so it is raised exactly once.
Only certificates expiring in the window are read (an indexed range query),
never every endpoint.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.events.base import ENDPOINT_EXPIRED, ENDPOINT_EXPIRING, EVENT_SOURCE, EventSink
from shared.model import Event
from shared.store.base import CertificateReader, EventLog, RevocationReader, TokenLedger

DEFAULT_WINDOW = dt.timedelta(hours=8)
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


def _newest_unrenewed(stores: AlertStores, serial: str, endpoint_id: str) -> bool:
    """True if `serial` is the endpoint's newest certificate and is not revoked."""
    lineage = stores.certificates.list_certificates_by_endpoint(endpoint_id)
    if not lineage or lineage[-1].serial != serial:
        return False
    return stores.revocations.get_revocation(serial) is None


def run_expiry_alerts(
    stores: AlertStores,
    *,
    authority_id: str,
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    sinks: Sequence[EventSink] = (),
    limit: int = 10_000,
) -> list[Event]:
    """Raise the alerts due at `now`; return the events raised by this call."""
    raised: list[Event] = []
    scans = (
        (ENDPOINT_EXPIRING, now, now + window),
        (ENDPOINT_EXPIRED, now - EXPIRED_LOOKBACK, now),
    )
    for kind, start, end in scans:
        for not_after, serial, endpoint_id in stores.expiring.list_certificates_expiring(
            authority_id, start, end, limit=limit
        ):
            if not _newest_unrenewed(stores, serial, endpoint_id):
                continue
            # One alert per (kind, certificate), whichever instance gets here first.
            if not stores.ledger.claim(f"alert:{kind}", serial, not_after + EXPIRED_LOOKBACK + window):
                continue
            raised.append(
                Event(
                    id=uuid.uuid4().hex,
                    type=kind,
                    source=f"{EVENT_SOURCE}/{authority_id}",
                    subject=endpoint_id,
                    time=now,
                    data={"endpointId": endpoint_id, "serial": serial, "notAfter": not_after.isoformat()},
                )
            )
    if raised:
        stores.events.append_events(raised)
        for sink in sinks:
            try:
                sink.publish(raised)
            except Exception:  # noqa: S112 - the events stay in the log for re-delivery
                continue
    return raised
