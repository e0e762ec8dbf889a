"""What every one-time token shares: unverified peeking, audiences, time rules.

The audience sets follow step-ca (reference s.2.1): for every CA host name,
`https://H/1.0/<op>` and `https://H/<op>`, compared after dropping ports, so
a token minted for `https://ca:9443/1.0/sign` works behind a front end on 443.
Time checks use a one-minute leeway. No check against the process start time:
a cold start would break it (DESIGN.md s.3).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jwt.algorithms import get_default_algorithms

from shared.errors import Unauthorized
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
LEGACY_AUDIENCE = "step-certificate-authority"

OPERATION_PATHS: dict[str, tuple[str, ...]] = {
    "sign": ("sign", "ssh/sign"),
    "revoke": ("revoke",),
    "renew": ("renew",),
    "ssh/sign": ("ssh/sign", "sign"),
    "ssh/revoke": ("ssh/revoke",),
    "ssh/renew": ("ssh/renew",),
    "ssh/rekey": ("ssh/rekey",),
}


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


def token_hash(token: str) -> str:
    """Replay key for tokens without a `jti` (lowercase hex SHA-256, as step-ca)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _strip_port(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host.lower()}{parts.path}"


class Audiences:
    """The audiences the CA accepts per operation."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self._hosts = [h for h in hosts if h]
        self._cache: dict[str, frozenset[str]] = {}

    def for_operation(self, operation: str) -> frozenset[str]:
        """Accepted `aud` values (ports stripped) for an operation (computed once)."""
        cached = self._cache.get(operation)
        if cached is None:
            cached = self._cache[operation] = frozenset(self._compute(operation))
        return cached

    def _compute(self, operation: str) -> set[str]:
        out: set[str] = set()
        if operation in ("sign", "revoke", "ssh/sign"):
            out.add(LEGACY_AUDIENCE)
        for host in self._hosts:
            h = host.strip("[]").lower()
            hv = f"[{h}]" if ":" in h else h
            for path in OPERATION_PATHS[operation]:
                out.add(f"https://{hv}/1.0/{path}")
                out.add(f"https://{hv}/{path}")
        return out

    def matches(self, audiences: list[str], operation: str) -> bool:
        """True if any `aud` (ports ignored, fragment dropped) is accepted."""
        accepted = self.for_operation(operation)
        for aud in audiences:
            if aud == LEGACY_AUDIENCE and aud in accepted:
                return True
            stripped = _strip_port(aud.split("#", 1)[0])
            if stripped is not None and stripped in accepted:
                return True
        return False


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
        return float(value)

    exp = num("exp", True)
    nbf = num("nbf", False)
    iat = num("iat", False)
    assert exp is not None
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
