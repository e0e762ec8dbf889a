"""Which JWS algorithms a public key may verify: pinned by its type, so HMAC and `none` never apply."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

_EC = {256: "ES256", 384: "ES384", 521: "ES512"}


def algorithms_for_key(key: Any) -> list[str]:
    """The asymmetric algorithms a key of this type can verify (never HMAC or `none`)."""
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ec.EllipticCurvePublicKey):
        return [_EC[key.curve.key_size]] if key.curve.key_size in _EC else []
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ["EdDSA"]
    return []
