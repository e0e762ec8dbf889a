"""`/ssh/revoke` (passive only, as step-ca): an SSHPOP token for the certificate itself, or a JWK token.

The revocation is recorded under `ssh_revocation_authority(...)` (so no X.509 CRL lists it; the
KRL does) in one write with its `certificate.revoked` event and the token's single-use claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.clock import Clock
from shared.errors import AlreadyRevoked, BadRequest, NotFound, NotImplementedYet, TokenAlreadyUsed, Unauthorized
from shared.events.base import CERTIFICATE_REVOKED
from shared.model import Revocation
from shared.provisioners.base import ReplayClaim
from shared.provisioners.jwk import JWKProvisioner
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import PeekedToken, peek
from shared.revocation import parse_reason_code
from shared.ssh.issued import SSHIssuer, SSHStore, ssh_revocation_authority
from shared.ssh.sshpop import SSHPOPVerifier


class SSHRevocations:
    """Passive revocation of one authority's SSH certificates."""

    def __init__(self, *, issuer: SSHIssuer, sshpop: SSHPOPVerifier, provisioners: Provisioners, store: SSHStore,
                 clock: Clock) -> None:
        self._issuer = issuer
        self._sshpop = sshpop
        self._provisioners = provisioners
        self._store = store
        self._clock = clock

    def revoke(self, body: Mapping[str, Any]) -> Revocation:
        """`POST /ssh/revoke` (passive).

        Raises:
            NotImplementedYet: `passive` is not true; BadRequest: malformed fields;
            Unauthorized: token problems or a subject other than the serial; NotFound: unknown serial.
        """
        if body.get("passive") is not True:
            raise NotImplementedYet("non-passive revocation not implemented")
        serial = body.get("serial")
        if not isinstance(serial, str) or not serial.isdigit() or len(serial) > 20 or int(serial) >= 2**64:
            raise BadRequest("serial must be a decimal SSH certificate serial number")
        serial = str(int(serial))
        code = parse_reason_code(body.get("reasonCode"))
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
            raise BadRequest("reason must be a string of at most 256 characters")
        ott = body.get("ott")
        if not isinstance(ott, str) or not ott:
            raise BadRequest("missing or empty ott")
        peeked = peek(ott)
        subject, replay, provisioner_id = self._token(peeked, ott)
        if subject != serial:
            raise Unauthorized("token subject does not match the serial number")
        record = self._issuer.own_record(serial)
        if record is None:
            raise NotFound("certificate not found")
        if self._store.get_revocation(serial) is not None:
            raise AlreadyRevoked(serial)
        if not self._store.claim(replay.namespace, replay.key, replay.expires_at):
            raise TokenAlreadyUsed()
        now = self._clock.now()
        authority_id = self._issuer.authority_id
        revocation = Revocation(
            serial=serial,
            authority_id=ssh_revocation_authority(authority_id),
            revoked_at=now.replace(microsecond=0),
            not_after=record.not_after,
            reason_code=code,
            reason=str(reason or ""),
            provisioner_id=provisioner_id,
        )
        recorder = self._issuer.recorder
        event = recorder.event(
            CERTIFICATE_REVOKED,
            serial,
            now,
            {"serial": serial, "kind": "ssh", "endpointId": record.endpoint_id, "reasonCode": code,
             "authorityId": authority_id},
        )
        self._store.revoke(revocation, events=[event])
        recorder.publish([event])
        return revocation

    def _token(self, peeked: PeekedToken, ott: str) -> tuple[str, ReplayClaim, str]:
        now = self._clock.now()
        if "sshpop" in peeked.header:
            auth = self._sshpop.verify(ott, "ssh/revoke", check_validity=True)
            if auth.subject != str(auth.certificate.serial):
                raise BadRequest("sshpop token subject must be equivalent to sshpop certificate serial number")
            return auth.subject, auth.replay, auth.provisioner.ref.id
        provisioner = self._provisioners.for_token(peeked)
        if not isinstance(provisioner, JWKProvisioner):
            raise Unauthorized("ssh revoke tokens come from a JWK or SSHPOP provisioner")
        claims, expires = provisioner._verify(peeked, "ssh/revoke", now)
        return str(claims["sub"]), provisioner._replay(peeked, claims, expires), provisioner.ref.id
