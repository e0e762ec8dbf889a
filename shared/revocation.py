"""Revocation: one-time token, mTLS, or (for ACME) an already-authorized caller.

Only passive revocation exists, as in step-ca: the record is written and the
validation authority publishes it in the next CRL (and OCSP answers from that
CRL). Reason codes follow BR-06: certificateHold and the unused value 7 are
refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.clock import Clock
from shared.errors import BadRequest, Forbidden, NotFound, NotImplementedYet, TokenAlreadyUsed, Unauthorized
from shared.events.base import CERTIFICATE_REVOKED, EVENT_SOURCE, EventSink
from shared.model import CertificateRecord, Event, Revocation, RevocationReason
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import peek
from shared.store.base import CertificateReader, RevocationStore, TokenLedger
from shared.x509.serials import parse_serial

#: The provisioner id prefix of a revocation asked for with a revoke token (`shared.linked.revoke_tokens`).
_DELEGATED = "revoke-token/"
ALLOWED_REASONS = {r.value for r in RevocationReason} - {
    RevocationReason.CERTIFICATE_HOLD,
    RevocationReason.REMOVE_FROM_CRL,
}


def parse_reason_code(value: object) -> int:
    """Validate a `reasonCode` (0..10, never certificateHold).

    Raises:
        BadRequest: not an allowed reason code.
    """
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("reasonCode must be an integer")
    if value < 0 or value > 10:
        raise BadRequest("reasonCode out of bounds")
    if value not in ALLOWED_REASONS:
        raise BadRequest(f"reasonCode {value} is not allowed")
    return value


class UpstreamRevoker(Protocol):
    """Registration authority mode (`shared.ra`): the revocation is made upstream first."""

    def revoke(self, serial: str, *, reason_code: int, reason: str) -> None:
        """Revoke at the upstream authority (raises a `CAError` when it cannot)."""
        ...


class Revoker:
    """Records revocations for one authority."""

    def __init__(
        self,
        *,
        authority_id: str,
        provisioners: Provisioners,
        tokens: TokenLedger,
        certificates: CertificateReader,
        revocations: RevocationStore,
        clock: Clock,
        sinks: Sequence[EventSink] = (),
        upstream: UpstreamRevoker | None = None,
    ) -> None:
        self._authority_id = authority_id
        self._upstream = upstream
        self._provisioners = provisioners
        self._tokens = tokens
        self._certificates = certificates
        self._revocations = revocations
        self._clock = clock
        self._sinks = list(sinks)

    def revoke_request(
        self,
        *,
        serial: object,
        ott: object,
        reason_code: object,
        reason: object,
        passive: object,
        client_certificate: x509.Certificate | None,
        delegate: str | None = None,
    ) -> Revocation:
        """`POST /revoke` as step-ca defines it.

        `delegate`: the id of the revoke token the request carried, already authenticated
        (`shared.linked.revoke_tokens`: a central Cirrus revoking what this linked one issued);
        it stands for the one-time token or client certificate.

        Raises:
            BadRequest, Unauthorized, Forbidden, NotFound, NotImplementedYet, AlreadyRevoked.
        """
        if passive is not None and not isinstance(passive, bool):
            raise BadRequest("passive must be a boolean")  # Go's JSON decoder refuses it: a 400
        if not isinstance(serial, str) or not serial:
            raise BadRequest("missing serial")
        try:
            serial_dec = str(parse_serial(serial))
        except ValueError as exc:
            raise BadRequest("invalid serial number") from exc
        code = parse_reason_code(reason_code)
        if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
            raise BadRequest("reason must be a string of at most 256 characters")
        if passive is not True:  # step-ca's RevokeRequest.Validate: checked after serial and reason
            raise NotImplementedYet("non-passive revocation not implemented")
        now = self._clock.now()
        if delegate is not None:
            if ott not in (None, ""):
                raise BadRequest("send either a revoke token or an ott, not both")
            return self._record_revocation(self._own_record(serial_dec), reason_code=code, reason=str(reason or ""),
                                           provisioner_id=f"{_DELEGATED}{delegate}", mtls=False)  # fmt: skip
        if isinstance(ott, str) and ott:
            peeked = peek(ott)
            provisioner = self._provisioners.for_token(peeked)
            auth = provisioner.authorize_revoke(peeked, now)
            # step-ca: a valid token for another serial is forbidden (403), not unauthenticated.
            try:
                token_serial = str(parse_serial(auth.serial))
            except ValueError as exc:
                raise Forbidden("token subject does not match the serial number") from exc
            if token_serial != serial_dec:
                raise Forbidden("token subject does not match the serial number")
            record = self._own_record(serial_dec)
            if not self._tokens.claim(auth.replay.namespace, auth.replay.key, auth.replay.expires_at):
                raise TokenAlreadyUsed()
            return self._record_revocation(
                record, reason_code=code, reason=str(reason or ""), provisioner_id=auth.provisioner.id, mtls=False
            )
        if ott not in (None, ""):
            raise BadRequest("ott must be a string")
        if client_certificate is None:
            raise BadRequest("missing ott or client certificate")  # step-ca's 400
        if str(client_certificate.serial_number) != serial_dec:
            raise Forbidden("serial number in client certificate different than body")
        record = self._own_record(serial_dec)
        # As /renew does: the presented certificate must be the one recorded, not another with its serial.
        if record.der != client_certificate.public_bytes(serialization.Encoding.DER):
            raise Unauthorized("client certificate is not the certificate recorded for this serial")
        return self._record_revocation(record, reason_code=code, reason=str(reason or ""), provisioner_id="", mtls=True)

    def revoke(self, serial: str, *, reason_code: int, reason: str, provisioner_id: str, mtls: bool) -> Revocation:
        """Record the revocation of a certificate this authority issued.

        Raises:
            NotFound: unknown serial.
            AlreadyRevoked: revoked before.
        """
        return self._record_revocation(
            self._own_record(serial), reason_code=reason_code, reason=reason, provisioner_id=provisioner_id, mtls=mtls
        )

    def _own_record(self, serial: str) -> CertificateRecord:
        """The record of a certificate this authority issued (one read per revocation).

        Raises:
            NotFound: unknown serial, or another authority's.
        """
        record = self._certificates.get_certificate(serial)
        # SSH certificates are revoked through /ssh/revoke, never into an X.509 CRL.
        if record is None or record.authority_id != self._authority_id or str(record.kind) != "x509":
            raise NotFound("certificate not found")
        return record

    def _record_revocation(
        self, record: CertificateRecord, *, reason_code: int, reason: str, provisioner_id: str, mtls: bool
    ) -> Revocation:
        serial = record.serial
        now = self._clock.now()
        revocation = Revocation(
            serial=serial,
            authority_id=self._authority_id,
            revoked_at=now.replace(microsecond=0),
            not_after=record.not_after,
            reason_code=reason_code,
            reason=reason,
            provisioner_id=provisioner_id or record.provisioner.id,
            mtls=mtls,
        )
        event = Event(
            id=uuid.uuid4().hex,
            type=CERTIFICATE_REVOKED,
            source=f"{EVENT_SOURCE}/{self._authority_id}",
            subject=serial,
            time=now,
            data={
                "serial": serial,
                "endpointId": record.endpoint_id,
                "reasonCode": reason_code,
                "authorityId": self._authority_id,
                # Asked by a central Cirrus with a revoke token: its report back is deferred
                # (`shared.linked.sink`), as the central is waiting on this very request.
                **({"revokeToken": provisioner_id.removeprefix(_DELEGATED)} if provisioner_id.startswith(_DELEGATED)
                   else {}),
            },
        )
        if self._upstream is not None:  # nothing is recorded here unless upstream revoked it
            self._upstream.revoke(serial, reason_code=reason_code, reason=reason)
        self._revocations.revoke(revocation, events=[event])
        for sink in self._sinks:
            try:
                sink.publish([event])
            except Exception:  # noqa: S112 - the event stays in the log for re-delivery
                continue
        return revocation
