"""The Bearer renewal token `step ca renew --mtls=false` sends.

Header `x5cInsecure` carries the certificate chain (base64 DER, leaf first).
The chain must verify to this CA's roots with ClientAuth EKU at the time
`leaf.notAfter - 1 minute`, so an expired certificate can still prove
possession (whether it may renew is the authority's decision, by
`allowRenewalAfterExpiry`). The JWT must be signed by the leaf's key.
Renew tokens carry no `jti`, so the replay key is a hash of the signing input
(header and claims): a re-signed twin of the same token is the same key. `sub`
must be the leaf's common name, as in step-ca.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Sequence

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from shared.errors import Unauthorized
from shared.provisioners.base import ReplayClaim
from shared.provisioners.tokens import MAX_TOKEN_LIFETIME, Audiences, check_times, peek, token_hash

_MAX_CHAIN = 5


def _algorithms_for(key: object) -> list[str]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return [{256: "ES256", 384: "ES384", 521: "ES512"}.get(key.curve.key_size, "ES256")]
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ["EdDSA"]
    raise Unauthorized("invalid token: unsupported certificate key")


def verify_renew_token(
    token: str,
    *,
    roots: Sequence[x509.Certificate],
    audiences: Audiences,
    now: dt.datetime,
) -> tuple[x509.Certificate, ReplayClaim]:
    """Verify a renew token; return the certificate to renew and its replay claim.

    Raises:
        Unauthorized: any check fails.
    """
    peeked = peek(token)
    chain_b64 = peeked.header.get("x5cInsecure") or peeked.header.get("x5c")
    if not isinstance(chain_b64, list) or not chain_b64 or len(chain_b64) > _MAX_CHAIN:
        raise Unauthorized("invalid token: missing x5cInsecure chain")
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in chain_b64]
    except (ValueError, TypeError, binascii.Error) as exc:
        raise Unauthorized("invalid token: invalid x5cInsecure chain") from exc
    leaf = chain[0]
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(list(roots)))
            .time(leaf.not_valid_after_utc - dt.timedelta(minutes=1))
            .build_client_verifier()
        )
        verifier.verify(leaf, chain[1:])
    except (VerificationError, ValueError) as exc:
        raise Unauthorized("invalid token: certificate chain does not verify") from exc
    key = leaf.public_key()
    algorithms = _algorithms_for(key)
    if peeked.header.get("alg") not in algorithms:
        raise Unauthorized("invalid token: algorithm not allowed")
    try:
        claims = jwt.decode(
            token,
            key=key,  # type: ignore[arg-type]
            algorithms=algorithms,
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token: signature does not verify") from exc
    if not audiences.matches(peeked.audiences, "renew"):
        raise Unauthorized("invalid token: invalid audience")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("invalid token: subject cannot be empty")
    if sub != _common_name(leaf):
        raise Unauthorized("invalid token: subject does not match the certificate's common name")
    expires = check_times(claims, now, max_lifetime=MAX_TOKEN_LIFETIME)
    return leaf, ReplayClaim(namespace="renew", key=token_hash(token), expires_at=expires)


def _common_name(cert: x509.Certificate) -> str | None:
    """The leaf's CN as Go's `pkix.Name.CommonName` reads it: the last one (None if it has none)."""
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[-1].value
    return value if isinstance(value, str) else None
