"""What every one-time token shares: unverified peeking, time rules, replay keys.

Audiences live in `shared.provisioners.audience` (re-exported here for the callers
that import them from this module). Time checks use a one-minute leeway. No check
against the process start time: a cold start would break it (DESIGN.md s.3).

Replay keys never depend on the signature bytes: an ECDSA signature `(r, s)` has a
twin `(r, n-s)` that verifies too, and a JWS may be re-signed at will by the key
holder, so a hash of the whole token would let one set of claims be used twice.
One-time tokens must carry a `jti` (step-ca falls back to the token hash; we refuse);
renew tokens, which the step CLI mints without one, are keyed by `token_hash`: a hash
of their signing input (header and claims).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms

from shared.errors import Unauthorized
from shared.provisioners.audience import LEGACY_AUDIENCE as LEGACY_AUDIENCE
from shared.provisioners.audience import OPERATION_PATHS as OPERATION_PATHS
from shared.provisioners.audience import Audiences as Audiences
from shared.strict_json import loads_strict

LEEWAY = dt.timedelta(minutes=1)
# PyJWT's asymmetric algorithm objects; HMAC and `none` are left out on purpose (JOSE-01).
_ALGORITHMS = {
    name: alg
    for name, alg in get_default_algorithms().items()
    if name in ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA")
}
MAX_TOKEN_BYTES = 16 * 1024
MAX_TOKEN_LIFETIME = dt.timedelta(hours=1)
_TO_STD = str.maketrans("-_", "+/")


def b64url_strict(segment: str) -> bytes:
    """Decode unpadded base64url, refusing padding and any character outside the alphabet (JOSE-02).

    Raises:
        ValueError: not strict base64url.
    """
    if "=" in segment or "+" in segment or "/" in segment or len(segment) % 4 == 1:
        raise ValueError("not base64url")
    return base64.b64decode(segment.translate(_TO_STD) + "=" * (-len(segment) % 4), validate=True)


def _b64url_json(segment: str) -> dict[str, Any]:
    if not segment:
        raise Unauthorized("invalid token")
    try:
        raw = b64url_strict(segment)
        value = loads_strict(raw)
    except (ValueError, TypeError) as exc:
        raise Unauthorized("invalid token") from exc
    if not isinstance(value, dict):
        raise Unauthorized("invalid token")
    return value


@dataclass(frozen=True, slots=True)
class PeekedToken:
    """A token's header and claims read WITHOUT verifying the signature.

    Used to choose which provisioner verifies it (JOSE-04: the `kid` selects
    from a trusted key set, nothing in the token is trusted yet); after
    `verify_signature` succeeds, the same parsed claims are the verified ones,
    so a token is decoded once.
    """

    raw: str
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    def verify_signature(self, key: Any, algorithms: list[str]) -> None:
        """Check the JWS signature with PyJWT's algorithm for the header's `alg`.

        The algorithm must be in `algorithms` (pinned by the key type), never `none`/HMAC.

        Raises:
            Unauthorized: algorithm not allowed or signature invalid.
        """
        alg = self.header.get("alg")
        if not isinstance(alg, str) or alg not in algorithms or alg not in _ALGORITHMS:
            raise Unauthorized("invalid token: algorithm not allowed for this provisioner")
        signing_input, _, signature = self.raw.rpartition(".")
        try:
            sig = b64url_strict(signature)
        except ValueError as exc:
            raise Unauthorized("invalid token") from exc
        if not _ALGORITHMS[alg].verify(signing_input.encode(), key, sig):
            raise Unauthorized("invalid token: signature does not verify")

    @property
    def audiences(self) -> list[str]:
        """`aud` as a list of strings."""
        aud = self.claims.get("aud")
        if isinstance(aud, str):
            return [aud]
        if isinstance(aud, list):
            return [a for a in aud if isinstance(a, str)]
        return []


def peek(token: str) -> PeekedToken:
    """Split a compact JWS and decode header and claims, unverified.

    Raises:
        Unauthorized: not a compact JWS with JSON header and claims.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized("invalid token")
    parts = token.split(".")
    if len(parts) != 3:
        raise Unauthorized("invalid token")
    header = _b64url_json(parts[0])
    claims = _b64url_json(parts[1])
    if "crit" in header:
        raise Unauthorized("invalid token: unsupported critical header")
    return PeekedToken(raw=token, header=header, claims=claims)


MAX_JTI_LENGTH = 256


def token_hash(token: str) -> str:
    """Replay key for tokens without a `jti`: hex SHA-256 of the signing input (`header.claims`).

    step-ca hashes the whole token; the signature is left out here on purpose, so a
    re-signed twin of the same header and claims (ECDSA's `(r, n-s)`) is the same key.
    """
    return hashlib.sha256(token.rpartition(".")[0].encode()).hexdigest()


def require_jti(claims: Mapping[str, Any]) -> str:
    """The token's `jti`: a non-empty string of at most 256 characters.

    Raises:
        Unauthorized: missing, empty, not a string, or too long.
    """
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise Unauthorized("invalid token: jti must be a non-empty string")
    if len(jti) > MAX_JTI_LENGTH:
        raise Unauthorized("invalid token: jti too long")
    return jti


_MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z


def check_times(claims: Mapping[str, Any], now: dt.datetime, *, max_lifetime: dt.timedelta) -> dt.datetime:
    """Check `exp`/`nbf`/`iat` with a one-minute leeway and a maximum lifetime.

    Returns the expiry, so the replay claim can be kept exactly that long.

    Raises:
        Unauthorized: missing or invalid times, expired, not yet valid, too long-lived.
    """

    def num(key: str, required: bool) -> float | None:
        value = claims.get(key)
        if value is None:
            if required:
                raise Unauthorized(f"invalid token: missing {key}")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unauthorized(f"invalid token: {key} must be a number")
        # NumericDate (RFC 7519 s.2); bounded so every later date computation stays in range.
        if isinstance(value, int):
            if not -_MAX_NUMERIC_DATE < value < _MAX_NUMERIC_DATE:
                raise Unauthorized(f"invalid token: {key} out of range")
        elif not math.isfinite(value) or not -_MAX_NUMERIC_DATE < value < _MAX_NUMERIC_DATE:
            raise Unauthorized(f"invalid token: {key} out of range")
        return float(value)

    exp = num("exp", True)
    nbf = num("nbf", False)
    iat = num("iat", False)
    assert exp is not None
    if nbf is not None and nbf > exp:
        raise Unauthorized("invalid token: nbf is after exp")
    ts = now.timestamp()
    leeway = LEEWAY.total_seconds()
    if ts > exp + leeway:
        raise Unauthorized("token is expired")
    if nbf is not None and ts < nbf - leeway:
        raise Unauthorized("token is not yet valid")
    if iat is not None and ts < iat - leeway:
        raise Unauthorized("token issued in the future")
    start = nbf if nbf is not None else iat
    if start is None:
        start = ts
    if exp - start > max_lifetime.total_seconds() + leeway:
        raise Unauthorized("token lifetime is too long")
    return dt.datetime.fromtimestamp(exp, dt.UTC) + LEEWAY
