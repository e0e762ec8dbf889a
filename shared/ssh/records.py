"""SSH certificates as records: one atomic write of the record, its endpoint, events and token claim.

The same shape as the X.509 records (`shared.authority`): kind `ssh`, the
encoded certificate in `der`, the key id as the name and the principals as
the SANs, so endpoints, lineage, alerts and metering treat both alike.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shared.events.base import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REKEYED,
    CERTIFICATE_RENEWED,
    ENDPOINT_CREATED,
    EventSink,
    authority_event,
    publish_to_sinks,
)
from shared.model import CertificateKind, CertificateRecord, Endpoint, Event, ProvisionerRef, TokenClaim
from shared.provisioners.base import ReplayClaim
from shared.ssh.certificate import SSHCertificate
from shared.store.base import IssuanceLedger

log = logging.getLogger("cirrus.ssh")

_EVENT_TYPES = {"sign": CERTIFICATE_ISSUED, "renew": CERTIFICATE_RENEWED, "rekey": CERTIFICATE_REKEYED}


class SSHRecorder:
    """Writes SSH issuances and hands their events to the sinks."""

    def __init__(self, *, authority_id: str, ledger: IssuanceLedger, sinks: Sequence[EventSink] = ()) -> None:
        self._authority_id = authority_id
        self._ledger = ledger
        self._sinks = list(sinks)

    def record(
        self,
        cert: SSHCertificate,
        provisioner: ProvisionerRef,
        endpoint: Endpoint,
        now: dt.datetime,
        *,
        operation: str,
        new_endpoint: bool,
        claim: ReplayClaim | None,
        renewed_from: str | None = None,
    ) -> CertificateRecord:
        """Store the certificate (claiming the token in the same write) and publish its events."""
        record = CertificateRecord(
            serial=str(cert.serial),
            authority_id=self._authority_id,
            kind=CertificateKind.SSH,
            der=cert.blob,
            not_before=cert.not_before,
            not_after=cert.not_after,
            provisioner=provisioner,
            endpoint_id=endpoint.id,
            subject_key=endpoint.subject_key,
            common_name=cert.key_id,
            sans=cert.principals,
            issued_at=now,
            renewed_from=renewed_from,
            operation=operation,
        )
        data: dict[str, Any] = {
            "serial": record.serial,
            "kind": "ssh",
            "certType": cert.type_name,
            "authorityId": self._authority_id,
            "endpointId": endpoint.id,
            "provisioner": provisioner.name,
            "keyId": cert.key_id,
            "principals": list(cert.principals),
            "notBefore": record.not_before.isoformat(),
            "notAfter": record.not_after.isoformat(),
        }
        if renewed_from:
            data["renewedFrom"] = renewed_from
        events = [self.event(_EVENT_TYPES[operation], record.serial, now, data)]
        if new_endpoint:
            events.append(
                self.event(ENDPOINT_CREATED, endpoint.id, now, {"endpointId": endpoint.id, "name": endpoint.name})
            )
        create = operation == "sign" and new_endpoint
        token = TokenClaim(claim.namespace, claim.key, claim.expires_at) if claim is not None else None
        self._ledger.record_issuance(record, new_endpoint=endpoint if create else None, events=events, claim=token)
        self.publish(events)
        return record

    def event(self, etype: str, subject: str, now: dt.datetime, data: Mapping[str, Any]) -> Event:
        """A CloudEvents-shaped event of this authority."""
        return authority_event(self._authority_id, etype, subject, now, data)

    def publish(self, events: Sequence[Event]) -> None:
        """Hand events to the sinks; a sink failure never undoes the issuance (the log keeps them)."""
        publish_to_sinks(self._sinks, events, log=log)
