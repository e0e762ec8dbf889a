"""The JWK provisioner: tokens signed by a provisioner key, as the step CLI mints them.

Header `kid` + claim `iss` select the provisioner; the algorithm is pinned by
the key type (EC P-256 -> ES256 only, Ed25519 -> EdDSA, RSA -> RS*/PS*), so
`none` and HMAC can never be accepted (JOSE-01, and PyJWT's HMAC-with-public-key
confusion cannot arise because the allowlist has no HS*).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import jwt

from shared.claims import resolve_claims
from shared.errors import ConfigError, Unauthorized
from shared.model import ProvisionerRef
from shared.provisioners.base import ConfiguredProvisioner, ReplayClaim, RevokeAuthorization, SignAuthorization
from shared.provisioners.tokens import (
    MAX_TOKEN_LIFETIME,
    Audiences,
    PeekedToken,
    check_times,
    require_jti,
)

_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]


def algorithms_for_jwk(jwk: Mapping[str, Any]) -> list[str]:
    """The only algorithms a JWK may sign with, decided by its key type.

    Raises:
        ConfigError: unsupported key type, or an `alg` that contradicts it.
    """
    kty = jwk.get("kty")
    if kty == "EC":
        crv = jwk.get("crv")
        if crv not in _EC_ALGS:
            raise ConfigError(f"unsupported EC curve {crv!r}")
        allowed = [_EC_ALGS[crv]]
    elif kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise ConfigError("unsupported OKP curve")
        allowed = ["EdDSA"]
    elif kty == "RSA":
        allowed = list(_RSA_ALGS)
    else:
        raise ConfigError(f"unsupported JWK key type {kty!r}")
    alg = jwk.get("alg")
    if alg:
        if alg not in allowed:
            raise ConfigError(f"JWK alg {alg!r} does not match key type {kty!r}")
        return [alg]
    return allowed


class JWKProvisioner(ConfiguredProvisioner):
    """A step-ca `JWK` provisioner."""

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        global_claims: Mapping[str, Any],
        audiences: Audiences,
    ) -> None:
        name = config.get("name")
        key = config.get("key")
        if not isinstance(name, str) or not name:
            raise ConfigError("JWK provisioner needs a name")
        if not isinstance(key, dict):
            raise ConfigError(f"JWK provisioner {name!r} needs a public 'key'")
        if "d" in key:
            raise ConfigError(f"JWK provisioner {name!r}: 'key' must be a public key")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ConfigError(f"JWK provisioner {name!r}: key needs a 'kid'")
        self._config = dict(config)
        self._kid = kid
        self._algorithms = algorithms_for_jwk(key)
        try:
            self._key = jwt.PyJWK(key, algorithm=self._algorithms[0]).key
        except (jwt.PyJWKError, jwt.InvalidKeyError) as exc:
            raise ConfigError(f"JWK provisioner {name!r}: invalid key") from exc
        self._ref = ProvisionerRef(id=f"{name}:{kid}", name=name, type="JWK")
        self._claims = resolve_claims(config.get("claims"), global_claims)
        self._audiences = audiences
        self._fragment = f"jwk/{name}"

    @property
    def kid(self) -> str:
        """The key id tokens carry in their header."""
        return self._kid

    @property
    def encrypted_key(self) -> str | None:
        """The password-encrypted private JWK (compact JWE), if configured."""
        value = self._config.get("encryptedKey")
        return value if isinstance(value, str) and value else None

    def _verify(self, peeked: PeekedToken, operation: str, now: dt.datetime) -> tuple[dict[str, Any], dt.datetime]:
        peeked.verify_signature(self._key, self._algorithms)
        claims = dict(peeked.claims)
        if claims.get("iss") != self._ref.name:
            raise Unauthorized("invalid token: invalid issuer")
        if not self._audiences.matches(peeked.audiences, operation, fragment=self._fragment):
            raise Unauthorized("invalid token: invalid audience")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("invalid token: subject cannot be empty")
        expires = check_times(claims, now, max_lifetime=MAX_TOKEN_LIFETIME)
        return claims, expires

    def _replay(self, peeked: PeekedToken, claims: Mapping[str, Any], expires: dt.datetime) -> ReplayClaim:
        # The `jti`, never a hash of the token: that would change with the signature bytes.
        return ReplayClaim(namespace=f"ott:{self._ref.id}", key=require_jti(claims), expires_at=expires)

    def authorize_sign(self, peeked: PeekedToken, now: dt.datetime) -> SignAuthorization:
        """Verify a sign token.

        Raises:
            Unauthorized: any token check fails.
        """
        claims, expires = self._verify(peeked, "sign", now)
        sans_raw = claims.get("sans")
        if sans_raw is None:
            sans: tuple[str, ...] = (claims["sub"],)
        elif isinstance(sans_raw, list) and all(isinstance(s, str) for s in sans_raw):
            sans = tuple(sans_raw)
        else:
            raise Unauthorized("invalid token: sans must be a list of strings")
        cnf = claims.get("cnf")
        fingerprint = None
        if cnf is not None:
            if not isinstance(cnf, dict):
                raise Unauthorized("invalid token: cnf must be an object")
            fingerprint = cnf.get("x5rt#S256")
            if fingerprint is not None and not isinstance(fingerprint, str):
                raise Unauthorized("invalid token: cnf x5rt#S256 must be a string")
        return SignAuthorization(
            provisioner=self._ref,
            claims=self._claims,
            subject=claims["sub"],
            sans=sans,
            replay=self._replay(peeked, claims, expires),
            token_claims=claims,
            csr_fingerprint=fingerprint,
            credential_id=self._kid,
            renewal_enabled=not self._claims.disable_renewal,
        )

    def authorize_revoke(self, peeked: PeekedToken, now: dt.datetime) -> RevokeAuthorization:
        """Verify a revoke token (`sub` is the serial to revoke).

        Raises:
            Unauthorized: any token check fails.
        """
        claims, expires = self._verify(peeked, "revoke", now)
        return RevokeAuthorization(
            provisioner=self._ref, serial=claims["sub"], replay=self._replay(peeked, claims, expires)
        )
