"""`/ssh/renew` and `/ssh/rekey`: a host certificate continued with an SSHPOP token.

As step-ca's `SignSSHRenew`/`SignSSHRekey`: the token proves possession of the current host
certificate (`shared.ssh.sshpop`); the new certificate keeps its type, key id, principals,
options and duration, starts now (minus the backdate), and joins the endpoint of the certificate
it continues. Renew keeps the key (an expired certificate only where the claims allow renewal
after expiry); rekey takes the body's new key and needs the current certificate valid now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.clock import Clock
from shared.errors import BadRequest, Unauthorized
from shared.model import Endpoint
from shared.ssh.certificate import HOST_CERT
from shared.ssh.issued import FOREVER, SSHIssued, SSHIssuer
from shared.ssh.options import parse_public_key_field
from shared.ssh.sshpop import SSHPOPAuthorization, SSHPOPVerifier
from shared.ssh.wire import SSHPublicKey
from shared.store.base import RevocationReader


class SSHRenewals:
    """Renew and rekey for one authority's SSH CA."""

    def __init__(self, *, issuer: SSHIssuer, sshpop: SSHPOPVerifier, revocations: RevocationReader, clock: Clock,
                 backdate: dt.timedelta) -> None:
        self._issuer = issuer
        self._sshpop = sshpop
        self._revocations = revocations
        self._clock = clock
        self._backdate = backdate

    def renew(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/renew`: a host certificate renewed with an SSHPOP token (same key)."""
        auth = self._sshpop.verify(body.get("ott"), "ssh/renew", check_validity=False)
        return self._continue(auth, None)

    def rekey(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/rekey`: as renew, with the body's new public key; the certificate must be valid now."""
        auth = self._sshpop.verify(body.get("ott"), "ssh/rekey", check_validity=True)
        key = parse_public_key_field(body.get("publicKey"))
        return self._continue(auth, key)

    def _continue(self, auth: SSHPOPAuthorization, new_key: SSHPublicKey | None) -> SSHIssued:
        old = auth.certificate
        if old.cert_type != HOST_CERT:
            raise BadRequest("sshpop certificate must be a host ssh certificate")
        if old.valid_after == 0 or old.valid_before in (0, FOREVER):
            raise BadRequest("cannot renew a certificate without a validity period")
        record = self._issuer.own_record(str(old.serial))
        if record is None or record.der != old.blob:
            raise Unauthorized("certificate not found")
        if self._revocations.get_revocation(record.serial) is not None:
            raise Unauthorized("ssh certificate has been revoked")
        claims = auth.provisioner.claims
        if claims.disable_renewal:
            raise Unauthorized(f"renew is disabled for provisioner '{auth.provisioner.ref.name}'")
        now = self._clock.now()
        ts = int(now.timestamp())
        if ts < old.valid_after:
            raise Unauthorized("ssh certificate is not yet valid")
        if ts > old.valid_before and not claims.allow_renewal_after_expiry:
            raise Unauthorized(f"ssh certificate expired on {old.not_after.isoformat()}")
        duration = old.valid_before - old.valid_after
        after = ts - int(self._backdate.total_seconds())
        cert = self._issuer.sign(
            new_key or old.key,
            old.cert_type,
            old.key_id,
            old.principals,
            after,
            after + duration,
            old.critical_options,
            old.extensions,
        )
        endpoint = Endpoint(
            id=record.endpoint_id,
            authority_id=self._issuer.authority_id,
            provisioner_id=record.provisioner.id,
            subject_key=record.subject_key,
            name=record.common_name,
            created_at=now,
        )
        op = "rekey" if new_key is not None else "renew"
        return self._issuer.record(
            cert, record.provisioner, endpoint, now, operation=op, new_endpoint=False,
            claim=auth.replay, renewed_from=record.serial,
        )
