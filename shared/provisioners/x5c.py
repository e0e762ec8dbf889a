"""The X5C provisioner: tokens signed by a certificate's key, its chain in the `x5c` header (reference s.2.3).

The chain (`x5c`: leaf first, std-base64 DER) must validate against the configured
`roots` (ca.json carries them as base64 of the PEM text, Go's []byte) for client
authentication at the request time: cryptography's RFC 5280 path validation
(`x509.verification`, client verifier: the leaf needs the clientAuth EKU, and unlike
Go's verifier an absent EKU is not read as "any"); the
leaf's key usage must allow digitalSignature; the JWT is verified with the leaf's key
(algorithms pinned by its type). Then as step-ca: `iss` = the name, `aud` with
`#x5c/<name>`, `sub` non-empty, `jti` the replay key, names as JWK tokens, and the
new certificate's validity inside the leaf's (the default end clipped to it).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from shared.claims import resolve_claims
from shared.errors import ConfigError, Unauthorized
from shared.model import ProvisionerRef
from shared.provisioners.base import (
    ReplayClaim,
    RevokeAuthorization,
    RoutedProvisioner,
    SignAuthorization,
    ValidityLimit,
)
from shared.provisioners.iid import audience_matches
from shared.provisioners.keyalgs import algorithms_for_key
from shared.provisioners.tokens import MAX_TOKEN_LIFETIME, Audiences, PeekedToken, check_times, require_jti

MAX_CHAIN = 5


def load_roots(raw: object, name: str) -> list[x509.Certificate]:
    """`roots` as ca.json has it (base64 of PEM text), or PEM text itself.

    Raises:
        ConfigError: no certificate in it.
    """
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"provisioner {name!r}: roots cannot be empty")
    text = raw.encode()
    if b"-----BEGIN" not in text:
        try:
            text = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError(f"provisioner {name!r}: roots must be base64 of PEM certificates") from exc
    try:
        roots = x509.load_pem_x509_certificates(text)
    except ValueError as exc:
        raise ConfigError(f"provisioner {name!r}: no certificate in roots") from exc
    return roots


class X5CProvisioner(RoutedProvisioner):
    """A step-ca `X5C` provisioner."""

    def __init__(self, *, config: Mapping[str, Any], global_claims: Mapping[str, Any], audiences: Audiences) -> None:
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("X5C provisioner needs a name")
        self._config = dict(config)
        self._store = Store(load_roots(config.get("roots"), name))
        self._token_id = f"x5c/{name}"
        self._ref = ProvisionerRef(id=self._token_id, name=name, type="X5C")
        self._claims = resolve_claims(config.get("claims"), global_claims)
        self._audiences = audiences

    def _leaf(self, peeked: PeekedToken, now: dt.datetime) -> x509.Certificate:
        raw = peeked.header.get("x5c")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_CHAIN or not all(isinstance(c, str) for c in raw):
            raise Unauthorized("invalid x5c token: x5c header must be a certificate chain")
        try:
            chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in raw]
        except (binascii.Error, ValueError) as exc:
            raise Unauthorized("invalid x5c token: x5c header must be a certificate chain") from exc
        verifier = PolicyBuilder().store(self._store).time(now.replace(tzinfo=None)).build_client_verifier()
        try:
            verifier.verify(chain[0], chain[1:])
        except VerificationError as exc:
            raise Unauthorized("invalid x5c token: the certificate chain does not validate") from exc
        try:
            chain[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound as exc:  # stricter than Go, which reads no EKU as "any"
            raise Unauthorized("invalid x5c token: the certificate has no clientAuth extended key usage") from exc
        try:
            usage = chain[0].extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.digital_signature:
            raise Unauthorized("invalid x5c token: the certificate may not sign (keyUsage)")
        return chain[0]

    def _verify(
        self, peeked: PeekedToken, operation: str, now: dt.datetime
    ) -> tuple[dict[str, Any], x509.Certificate, ReplayClaim]:
        leaf = self._leaf(peeked, now)
        key = leaf.public_key()
        peeked.verify_signature(key, algorithms_for_key(key))
        claims = dict(peeked.claims)
        if claims.get("iss") != self._ref.name:
            raise Unauthorized("invalid x5c token: invalid issuer")
        expires = check_times(claims, now, max_lifetime=MAX_TOKEN_LIFETIME)
        if not audience_matches(self._audiences, peeked.audiences, self._token_id, operation):
            raise Unauthorized("invalid x5c token: invalid audience")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("invalid x5c token: subject cannot be empty")
        key_id = require_jti(claims)  # step's x5c tokens carry one; refuse rather than fall back (issue 12)
        return claims, leaf, ReplayClaim(namespace=f"ott:{self._ref.id}", key=key_id, expires_at=expires)

    def authorize_sign(self, peeked: PeekedToken, now: dt.datetime) -> SignAuthorization:
        """Verify an x5c token; names as a JWK token's, validity inside the leaf's.

        Raises:
            Unauthorized: the chain, the signature or a claim fails (401).
        """
        claims, leaf, replay = self._verify(peeked, "sign", now)
        sans_raw = claims.get("sans")
        if sans_raw is None:
            sans: tuple[str, ...] = (claims["sub"],)
        elif isinstance(sans_raw, list) and all(isinstance(s, str) for s in sans_raw):
            sans = tuple(sans_raw)
        else:
            raise Unauthorized("invalid x5c token: sans must be a list of strings")
        return SignAuthorization(
            provisioner=self._ref,
            claims=self._claims,
            subject=claims["sub"],
            sans=sans,
            replay=replay,
            token_claims=claims,
            renewal_enabled=not self._claims.disable_renewal,
            validity_limit=ValidityLimit(leaf.not_valid_before_utc, leaf.not_valid_after_utc),
            authorization_crt=leaf,
            authorization_principal=_common_name(leaf),
        )

    def authorize_revoke(self, peeked: PeekedToken, now: dt.datetime) -> RevokeAuthorization:
        """Verify an x5c revoke token (`sub` is the serial).

        Raises:
            Unauthorized: any check fails.
        """
        claims, _, replay = self._verify(peeked, "revoke", now)
        return RevokeAuthorization(provisioner=self._ref, serial=claims["sub"], replay=replay)


def _common_name(leaf: x509.Certificate) -> str:
    names = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""
