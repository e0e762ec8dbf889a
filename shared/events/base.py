"""The event-sink seam.

Events are first appended to the store's event log together with the fact they
describe (atomic with the issuance or revocation); sinks then carry them to the
outside world (log, HMAC-signed webhook, Pub/Sub). A sink failure never undoes
an issuance: the event stays in the log for a later sweep to re-deliver.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from shared.model import Event

EVENT_SOURCE = "cirrus-ca"

# Event types (CloudEvents `type`), reverse-DNS as CloudEvents recommends.
CERTIFICATE_ISSUED = "dev.cirrus.certificate.issued"
CERTIFICATE_RENEWED = "dev.cirrus.certificate.renewed"
CERTIFICATE_REKEYED = "dev.cirrus.certificate.rekeyed"
CERTIFICATE_REVOKED = "dev.cirrus.certificate.revoked"
ENDPOINT_CREATED = "dev.cirrus.endpoint.created"
ENDPOINT_EXPIRING = "dev.cirrus.endpoint.expiring"
ENDPOINT_EXPIRED = "dev.cirrus.endpoint.expired"
INVENTORY_CHANGED = "dev.cirrus.inventory.changed"
CRL_PUBLISHED = "dev.cirrus.crl.published"
CRL_FAILED = "dev.cirrus.crl.failed"
AUTHORITY_EXPIRING = "dev.cirrus.authority.expiring"
PROVISIONER_CHANGED = "dev.cirrus.provisioner.changed"
LINKED_REVOCATION_DELIVERED = "dev.cirrus.linked.revocation.delivered"
LINKED_REVOCATION_FAILED = "dev.cirrus.linked.revocation.failed"


class EventSink(Protocol):
    """Delivers events somewhere outside the CA."""

    def publish(self, events: Sequence[Event]) -> None:
        """Deliver events; raise `shared.errors.BackendError` on failure."""
        ...


def authority_event(authority_id: str, etype: str, subject: str, now: dt.datetime, data: Mapping[str, Any]) -> Event:
    """A CloudEvents-shaped event of one authority (X.509 and SSH issuance share this shape)."""
    return Event(
        id=secrets.token_hex(16),
        type=etype,
        source=f"{EVENT_SOURCE}/{authority_id}",
        subject=subject,
        time=now,
        data=data,
    )


def publish_to_sinks(sinks: Sequence[EventSink], events: Sequence[Event], *, log: logging.Logger) -> None:
    """Hand events to every sink; a sink failure never undoes the fact (the event log keeps it)."""
    for sink in sinks:
        try:
            sink.publish(events)
        except Exception:
            log.warning("event sink %s failed; events stay in the log", type(sink).__name__, exc_info=True)
