"""The SSHPOP provisioner: a token signed by the key of an SSH certificate this CA issued.

As step-ca's `sshpop.go`: the JWT header `sshpop` carries the current
certificate (standard base64 of its wire form); the certificate must be
signed by the CA's user key (user certificates) or host key (host
certificates), the JWT by the certificate's own key; `iss` is the
provisioner's name, `aud` one of the operation's audiences (optionally with
the `#sshpop/<name>` fragment), `sub` non-empty. Renewal does not check the
certificate's validity here (the renewal rules do); rekey and revoke do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from shared.clock import Clock
from shared.errors import BadRequest, Unauthorized
from shared.keys.base import PublicKey
from shared.provisioners.base import ReplayClaim
from shared.provisioners.registry import ListedProvisioner
from shared.provisioners.tokens import MAX_TOKEN_LIFETIME, Audiences, PeekedToken, check_times, peek, require_jti
from shared.ssh.certificate import HOST_CERT, USER_CERT, SSHCertificate, parse_certificate
from shared.ssh.wire import WireError, b64decode_strict

_RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]


@dataclass(frozen=True, slots=True)
class SSHPOPAuthorization:
    """A verified SSHPOP token: the certificate it proves possession of, and its provisioner."""

    certificate: SSHCertificate
    provisioner: ListedProvisioner
    subject: str
    replay: ReplayClaim


def _algorithms(key: PublicKey) -> list[str]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ["EdDSA"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        return ["ES256"] if key.curve.name == "secp256r1" else ["ES384"]
    return list(_RSA_ALGS)


def verify_sshpop(
    peeked: PeekedToken,
    *,
    provisioners: Iterable[Any],
    user_ca: PublicKey,
    host_ca: PublicKey,
    audiences: Audiences,
    operation: str,
    now: dt.datetime,
    check_validity: bool,
) -> SSHPOPAuthorization:
    """Authenticate an SSHPOP token.

    Raises:
        Unauthorized: any check fails (never a 500 for a malformed header).
    """
    header = peeked.header.get("sshpop")
    try:
        cert = parse_certificate(b64decode_strict(header, "sshpop header"))
    except WireError as exc:
        raise Unauthorized(f"invalid sshpop certificate: {exc}") from exc
    iss = peeked.claims.get("iss")
    provisioner = next(
        (
            p
            for p in provisioners
            if isinstance(p, ListedProvisioner) and p.ref.type == "SSHPOP" and p.ref.name == iss
        ),
        None,
    )
    if provisioner is None:
        raise Unauthorized("provisioner not found or invalid audience")
    if check_validity:
        ts = int(now.timestamp())
        if ts < cert.valid_after:
            raise Unauthorized("sshpop certificate validAfter is in the future")
        if cert.valid_before != 2**64 - 1 and ts >= cert.valid_before:
            raise Unauthorized("sshpop certificate validBefore is in the past")
    if cert.cert_type == USER_CERT:
        ca = user_ca
    elif cert.cert_type == HOST_CERT:
        ca = host_ca
    else:
        raise Unauthorized("sshpop certificate has an unknown type")
    if not cert.signed_by(ca):
        raise Unauthorized("could not find valid ca signer to verify sshpop certificate")
    peeked.verify_signature(cert.key.key, _algorithms(cert.key.key))
    claims = peeked.claims
    expires = check_times(claims, now, max_lifetime=MAX_TOKEN_LIFETIME)
    # The audience may carry the provisioner's own fragment (`#sshpop/<name>`) and no other.
    if not audiences.matches(peeked.audiences, operation, fragment=provisioner.ref.id):
        raise Unauthorized("sshpop token has invalid audience claim (aud)")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("sshpop token subject cannot be empty")
    replay = ReplayClaim(namespace=f"ott:{provisioner.ref.id}", key=require_jti(claims), expires_at=expires)
    return SSHPOPAuthorization(certificate=cert, provisioner=provisioner, subject=sub, replay=replay)


@dataclass(frozen=True, slots=True)
class SSHPOPVerifier:
    """`verify_sshpop` bound to one authority's CA keys, provisioners and audiences (renew, rekey, revoke)."""

    provisioners: Iterable[Any]
    user_ca: PublicKey
    host_ca: PublicKey
    audiences: Audiences
    clock: Clock

    def verify(self, ott: object, operation: str, *, check_validity: bool) -> SSHPOPAuthorization:
        """Authenticate the body's `ott` as an SSHPOP token for `operation`.

        Raises:
            BadRequest: no token; Unauthorized: not an sshpop token, or any check fails.
        """
        if not isinstance(ott, str) or not ott:
            raise BadRequest("missing or empty ott")
        peeked = peek(ott)
        if "sshpop" not in peeked.header:
            raise Unauthorized("token must be an sshpop token")
        return verify_sshpop(peeked, provisioners=self.provisioners, user_ca=self.user_ca, host_ca=self.host_ca,
                             audiences=self.audiences, operation=operation, now=self.clock.now(),
                             check_validity=check_validity)
