"""Checking and recording a linked authority's report (`POST /linked/v1/report`).

A report is checked whole before anything is recorded: a malformed item, a
certificate that its linked authority's anchors did not sign, or a serial another
authority holds refuses the report (400/409 naming the item), so a sender fixes it
and sends it again without working out which half went in.

Nothing is counted twice: an item whose report `id` was seen is `replayed`; a
certificate already recorded for that authority (same serial, same DER) is a
`duplicate`; a revocation already recorded is a `duplicate`. Reported
certificates are recorded like issued ones (`record_issuance`, so endpoints,
alerts and usage see them), grouped by subject under the linked authority's id.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.endpoints import subject_endpoint_id
from shared.errors import AlreadyRevoked, BadRequest, Conflict
from shared.events.base import CERTIFICATE_ISSUED, CERTIFICATE_REVOKED, ENDPOINT_CREATED, EVENT_SOURCE, EventSink
from shared.linked.registry import LinkDocuments, LinkedAuthority
from shared.model import (
    CertificateKind,
    CertificateRecord,
    Endpoint,
    Event,
    ProvisionerRef,
    Revocation,
    RevocationReason,
    subject_key,
)
from shared.x509.names import common_name_of, sans_of

MAX_BODY = 1 << 20
MAX_EVENTS = 100
MAX_CERTIFICATE = 16 * 1024
REPORTS = "linked_reports"
#: How long a report id is remembered (a sender's re-delivery happens within hours).
KEEP_REPORT_IDS = dt.timedelta(days=30)
#: A revocation time may be this far ahead of our clock (the sender's clock skew).
SKEW = dt.timedelta(minutes=5)
_REPORT_ID = re.compile(r"[\x21-\x7e]{1,128}\Z")
_FIELDS = frozenset({"type", "certificate", "revokedAt", "reasonCode", "id"})


class IngestStore(LinkDocuments, Protocol):
    """What recording a report needs of the store."""

    def get_certificate(self, serial: str) -> CertificateRecord | None:
        """The record of a serial, or None."""
        ...

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """One endpoint or None."""
        ...

    def record_issuance(
        self, certificate: CertificateRecord, *, new_endpoint: Endpoint | None = None, events: Sequence[Event] = ()
    ) -> None:
        """Record a certificate atomically with its endpoint and events."""
        ...

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Record a revocation with its events."""
        ...


@dataclass(frozen=True, slots=True)
class ReportItem:
    """One checked event of a report."""

    index: int
    type: str  # "issued" | "revoked"
    certificate: x509.Certificate
    der: bytes
    report_id: str | None
    revoked_at: dt.datetime | None
    reason_code: int


def decode_certificate(text: str) -> tuple[x509.Certificate, bytes]:
    """A certificate from PEM or base64 DER.

    Raises:
        ValueError: neither.
    """
    if "-----BEGIN" in text:
        cert = x509.load_pem_x509_certificate(text.encode())
        return cert, cert.public_bytes(serialization.Encoding.DER)
    try:
        der = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    return x509.load_der_x509_certificate(der), der


def _timestamp(value: Any, where: str) -> dt.datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest(f"{where}: revokedAt must be an RFC 3339 timestamp")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{where}: revokedAt must be an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise BadRequest(f"{where}: revokedAt needs a UTC offset (Z or +hh:mm)")
    return when.astimezone(dt.UTC)


def parse_report(body: Mapping[str, Any], link: LinkedAuthority, *, now: dt.datetime) -> list[ReportItem]:
    """Check every item of a report (shape, certificate, chain) before anything is recorded.

    Raises:
        BadRequest: the first mistake, naming its item (`events[i]`).
    """
    if set(body) != {"events"}:
        raise BadRequest("the report must be an object with one member, \"events\"")
    events = body["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_EVENTS:
        raise BadRequest(f"\"events\" must be a list of 1 to {MAX_EVENTS} items")
    items: list[ReportItem] = []
    for index, raw in enumerate(events):
        where = f"events[{index}]"
        if not isinstance(raw, dict):
            raise BadRequest(f"{where}: must be an object")
        extra = set(raw) - _FIELDS
        if extra:
            raise BadRequest(f"{where}: unknown member {sorted(extra)[0]!r}")
        kind = raw.get("type")
        if kind not in ("issued", "revoked"):
            raise BadRequest(f"{where}: type must be \"issued\" or \"revoked\"")
        text = raw.get("certificate")
        if not isinstance(text, str) or not text or len(text) > MAX_CERTIFICATE:
            raise BadRequest(f"{where}: certificate must be a PEM or base64 DER string")
        try:
            cert, der = decode_certificate(text)
        except ValueError:
            raise BadRequest(f"{where}: certificate is not a PEM or base64 DER X.509 certificate") from None
        if link.issuer_of(cert) is None:
            raise BadRequest(f"{where}: certificate does not chain to linked authority {link.name!r}")
        report_id = raw.get("id")
        if report_id is not None and (not isinstance(report_id, str) or not _REPORT_ID.match(report_id)):
            raise BadRequest(f"{where}: id must be 1 to 128 printable ASCII characters")
        revoked_at: dt.datetime | None = None
        reason = raw.get("reasonCode", 0)
        if kind == "issued" and ("revokedAt" in raw or "reasonCode" in raw):
            raise BadRequest(f"{where}: revokedAt and reasonCode belong to a \"revoked\" item")
        if kind == "revoked":
            revoked_at = _timestamp(raw["revokedAt"], where) if "revokedAt" in raw else now
            if revoked_at > now + SKEW:
                raise BadRequest(f"{where}: revokedAt is in the future")
            valid = {int(r) for r in RevocationReason} - {int(RevocationReason.CERTIFICATE_HOLD)}
            if type(reason) is not int or reason not in valid:
                raise BadRequest(f"{where}: reasonCode must be an RFC 5280 CRLReason code (not 6, certificateHold)")
        items.append(ReportItem(index, kind, cert, der, report_id, revoked_at, reason))
    return items


@dataclass
class Ingest:
    """Records checked reports for one store; hands the new events to the sinks."""

    store: IngestStore
    sinks: Sequence[EventSink] = ()

    def record(self, link: LinkedAuthority, items: Sequence[ReportItem], *, now: dt.datetime) -> list[dict[str, Any]]:
        """Record a checked report; one result per item, in order.

        Raises:
            Conflict: a serial recorded for another authority, or another certificate (naming the item).
        """
        for item in items:  # refused whole, before anything is recorded
            existing = self.store.get_certificate(str(item.certificate.serial_number))
            if existing is not None and (existing.authority_id != link.authority_id or existing.der != item.der):
                raise Conflict(f"events[{item.index}]: serial already recorded for another certificate")
        results: list[dict[str, Any]] = []
        for item in items:
            serial = str(item.certificate.serial_number)
            result: dict[str, Any] = {"index": item.index, "serial": serial}
            if item.report_id is not None:
                result["id"] = item.report_id
            key = f"{link.name}-{hashlib.sha256((item.report_id or '').encode()).hexdigest()[:40]}"
            if item.report_id is not None and self.store.get_document(REPORTS, key) is not None:
                results.append({**result, "status": "replayed"})
                continue
            events = self._issued(link, item, now)
            recorded = bool(events)
            if item.type == "revoked":
                revoked = self._revoked(link, item, now)
                events += revoked
                recorded = bool(revoked)
            if item.report_id is not None:
                self.store.create_document(
                    REPORTS, key, {"link": link.name, "serial": serial, "at": now.isoformat()},
                    expires_at=now + KEEP_REPORT_IDS,
                )  # fmt: skip
            self._publish(events)
            results.append({**result, "status": "recorded" if recorded else "duplicate"})
        return results

    def _event(self, link: LinkedAuthority, etype: str, subject: str, now: dt.datetime, data: dict[str, Any]) -> Event:
        return Event(
            id=secrets.token_hex(16), type=etype, source=f"{EVENT_SOURCE}/{link.authority_id}",
            subject=subject, time=now, data={**data, "linkedAuthority": link.name},
        )  # fmt: skip

    def _issued(self, link: LinkedAuthority, item: ReportItem, now: dt.datetime) -> list[Event]:
        """Record the certificate unless it is; the events raised (none when it was)."""
        cert = item.certificate
        serial = str(cert.serial_number)
        if self.store.get_certificate(serial) is not None:
            return []
        cn, sans = common_name_of(cert.subject), tuple(sans_of(cert))
        key = subject_key(cn, sans) or f"serial:{serial}"
        provisioner = ProvisionerRef(id=link.provisioner_id, name=link.name, type="linked")
        endpoint = Endpoint(
            id=subject_endpoint_id(link.authority_id, key), authority_id=link.authority_id,
            provisioner_id=provisioner.id, subject_key=key, name=cn or (sans[0] if sans else serial), created_at=now,
        )  # fmt: skip
        new_endpoint = self.store.get_endpoint(endpoint.id) is None
        record = CertificateRecord(
            serial=serial, authority_id=link.authority_id, kind=CertificateKind.X509, der=item.der,
            not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc, provisioner=provisioner,
            endpoint_id=endpoint.id, subject_key=key, common_name=cn, sans=sans,
            issued_at=min(now, cert.not_valid_before_utc), operation="sign",
        )  # fmt: skip
        data = {
            "serial": serial, "authorityId": link.authority_id, "endpointId": endpoint.id,
            "provisioner": link.provisioner_id, "commonName": cn, "sans": list(sans),
            "notBefore": record.not_before.isoformat(), "notAfter": record.not_after.isoformat(),
        }  # fmt: skip
        events = [self._event(link, CERTIFICATE_ISSUED, serial, now, data)]
        if new_endpoint:
            events.append(self._event(link, ENDPOINT_CREATED, endpoint.id, now, {"endpointId": endpoint.id,
                                                                                 "name": endpoint.name}))  # fmt: skip
        try:
            self.store.record_issuance(record, new_endpoint=endpoint if new_endpoint else None, events=events)
        except Conflict:  # the same report taken by another instance a moment ago
            return []
        return events

    def _revoked(self, link: LinkedAuthority, item: ReportItem, now: dt.datetime) -> list[Event]:
        serial = str(item.certificate.serial_number)
        assert item.revoked_at is not None
        revocation = Revocation(
            serial=serial, authority_id=link.authority_id, revoked_at=item.revoked_at.replace(microsecond=0),
            not_after=item.certificate.not_valid_after_utc, reason_code=item.reason_code,
            reason="reported by linked authority", provisioner_id=link.provisioner_id,
        )  # fmt: skip
        record = self.store.get_certificate(serial)
        event = self._event(link, CERTIFICATE_REVOKED, serial, now, {
            "serial": serial, "endpointId": record.endpoint_id if record else "", "reasonCode": item.reason_code,
            "authorityId": link.authority_id,
        })  # fmt: skip
        try:
            self.store.revoke(revocation, events=[event])
        except AlreadyRevoked:
            return []
        return [event]

    def _publish(self, events: Sequence[Event]) -> None:
        """Hand events to the sinks; a failure leaves them in the log for the sweep."""
        if not events:
            return
        for sink in self.sinks:
            try:
                sink.publish(events)
            except Exception:  # noqa: S112 - the event stays in the log for re-delivery
                continue
