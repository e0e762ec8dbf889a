"""Recording an X.509 issuance: the certificate record, its endpoint, its events, one write.

The last step of every path through `shared.authority` (sign, ACME, renew, rekey,
and the registration authority's forwarded issuance) is the same, and it is where
"nothing lost, nothing leaked" is decided: the record, a new endpoint, the events
and the one-time token claim go to the store in one atomic write (or ride the HTTP
loop's group commit), and only then are the events handed to the sinks and the
certificate returned. Kept in its own module so that rule lives in one place,
apart from how a certificate is authorized and built.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.events.base import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REKEYED,
    CERTIFICATE_RENEWED,
    ENDPOINT_CREATED,
    EventSink,
    authority_event,
    publish_to_sinks,
)
from shared.groupcommit import CommitGroup
from shared.issued import Issued
from shared.model import CertificateKind, CertificateRecord, Endpoint, Event, ProvisionerRef, TokenClaim
from shared.provisioners.base import ReplayClaim
from shared.store.base import IssuanceLedger, IssuanceWrite
from shared.x509.names import common_name_of, sans_of

log = logging.getLogger("cirrus.authority")  # the pipeline's logger name, unchanged by the split

_EVENT_TYPES = {"sign": CERTIFICATE_ISSUED, "renew": CERTIFICATE_RENEWED, "rekey": CERTIFICATE_REKEYED}


class IssuanceRecorder:
    """Records one authority's issuances and publishes their events."""

    def __init__(
        self,
        *,
        authority_id: str,
        ledger: IssuanceLedger,
        intermediates: Sequence[x509.Certificate],
        sinks: Sequence[EventSink] = (),
    ) -> None:
        """Record into `ledger`; answers carry `intermediates` (PEM-encoded once, here)."""
        self._authority_id = authority_id
        self._ledger = ledger
        self._intermediates = intermediates  # the authority's own list, handed out as each answer's chain
        self._chain_pem = tuple(c.public_bytes(serialization.Encoding.PEM).decode() for c in self._intermediates)
        self._sinks = list(sinks)

    def record(
        self,
        cert: x509.Certificate,
        provisioner: ProvisionerRef,
        endpoint: Endpoint,
        now: dt.datetime,
        *,
        renewed_from: str | None,
        operation: str,
        new_endpoint: bool,
        create_endpoint: bool = True,
        claim: ReplayClaim | None = None,
        names: tuple[str, tuple[str, ...]] | None = None,
        group: CommitGroup | None = None,
    ) -> Issued:
        """Store the issuance (or add it to `group`'s commit), then publish its events.

        `names`: the (common name, SANs in the extension's order) just put in the
        certificate, so they need not be read back out of it.
        """
        cn, sans = names if names is not None else (common_name_of(cert.subject), tuple(sans_of(cert)))
        record = CertificateRecord(
            serial=str(cert.serial_number),
            authority_id=self._authority_id,
            kind=CertificateKind.X509,
            der=cert.public_bytes(serialization.Encoding.DER),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            provisioner=provisioner,
            endpoint_id=endpoint.id,
            subject_key=endpoint.subject_key,
            common_name=cn,
            sans=sans,
            issued_at=now,
            renewed_from=renewed_from,
            operation=operation,
        )
        data: dict[str, Any] = {
            "serial": record.serial,
            "authorityId": self._authority_id,
            "endpointId": endpoint.id,
            "provisioner": provisioner.name,
            "commonName": cn,
            "sans": list(sans),
            "notBefore": record.not_before.isoformat(),
            "notAfter": record.not_after.isoformat(),
        }
        if renewed_from:
            data["renewedFrom"] = renewed_from
        events = [authority_event(self._authority_id, _EVENT_TYPES[operation], record.serial, now, data)]
        if new_endpoint:
            events.append(authority_event(self._authority_id, ENDPOINT_CREATED, endpoint.id, now,
                                          {"endpointId": endpoint.id, "name": endpoint.name}))
        # A subject-grouped endpoint that was just read as existing is not sent again: the
        # create would be refused and cost a second commit and a read (see docs/costs.md).
        # (One created by another instance after our read found none is kept by the store.)
        create = operation == "sign" and create_endpoint and new_endpoint
        # The token claim rides in the same atomic write: a replay can never be recorded,
        # and a failed write leaves the token usable for the client's retry.
        token = TokenClaim(claim.namespace, claim.key, claim.expires_at) if claim is not None else None
        if group is not None:
            group.add(
                IssuanceWrite(record, endpoint if create else None, events, token), lambda: self._publish(events)
            )
        else:
            self._ledger.record_issuance(record, new_endpoint=endpoint if create else None, events=events, claim=token)
            self._publish(events)
        return Issued(certificate=cert, chain=self._intermediates, record=record, chain_pem=self._chain_pem)

    def _publish(self, events: Sequence[Event]) -> None:
        """Hand events to the sinks; a sink failure never undoes the issuance."""
        publish_to_sinks(self._sinks, events, log=log)
