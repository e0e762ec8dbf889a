"""Flattened JWS parsing and verification for ACME (RFC 8555 s.6.2, RFC 7515).

Only the flattened JSON serialization with a protected header is accepted; a
JWS that carries an unprotected `header`, several `signatures`, `crit`,
duplicate header members, padded base64, `alg: none`, an HMAC alg or a
private key in `jwk` is refused before any signature math runs. The key type
decides the algorithm family (JOSE-01), so an RSA key can never be checked as
ES256 and HMAC never meets an asymmetric key. Signatures are checked with
PyJWT's algorithm objects, which take raw R||S for ECDSA (DER is refused, JOSE-03).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from shared import strict_json
from shared.acme.problems import ACMEProblem

#: Accepted `alg` values, in the order advertised by badSignatureAlgorithm.
ALGORITHMS: tuple[str, ...] = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"^[A-Za-z0-9_-]*\Z")
_MIN_RSA_BITS = 2048

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


def b64d(text: Any, what: str = "value") -> bytes:
    """Strict base64url decode (no padding, URL alphabet only)."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        raise ACMEProblem("malformed", f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ACMEProblem("malformed", f"{what} is not unpadded base64url") from exc


def b64e(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def loads_strict(data: bytes | str, what: str) -> Any:
    """JSON decode refusing duplicate members and unpaired surrogates (`shared.strict_json`, JOSE-02)."""
    try:
        return strict_json.loads_strict(data.encode() if isinstance(data, str) else data)
    except strict_json.StrictJSONError as exc:
        raise ACMEProblem("malformed", str(exc)) from exc
    except (ValueError, UnicodeError) as exc:
        raise ACMEProblem("malformed", f"{what} is not valid JSON") from exc


@dataclass(frozen=True, slots=True)
class JWS:
    """A parsed (not yet verified) flattened JWS."""

    header: dict[str, Any]
    payload: bytes
    signature: bytes
    signing_input: bytes

    @property
    def alg(self) -> str:
        """The protected `alg`."""
        return str(self.header.get("alg", ""))

    @property
    def is_post_as_get(self) -> bool:
        """An empty payload (RFC 8555 s.6.3)."""
        return self.payload == b""

    def json_payload(self) -> dict[str, Any]:
        """The payload as a JSON object ({} is not accepted for POST-as-GET)."""
        obj = loads_strict(self.payload, "payload")
        if not isinstance(obj, dict):
            raise ACMEProblem("malformed", "payload must be a JSON object")
        return obj


def parse(body: bytes | str | dict[str, Any], *, allow_mac: bool = False) -> JWS:
    """Parse a flattened JWS; check structure and the header's algorithm.

    `allow_mac` is only for the inner EAB JWS, which is HMAC-only and never
    goes through `verify` (see `eab.py`).
    """
    obj = body if isinstance(body, dict) else loads_strict(body, "JWS")
    if not isinstance(obj, dict):
        raise ACMEProblem("malformed", "JWS must be a JSON object")
    if "signatures" in obj:
        raise ACMEProblem("malformed", "JWS must use the flattened serialization")
    if "header" in obj:
        raise ACMEProblem("malformed", "JWS must not have an unprotected header")
    if set(obj) != {"protected", "payload", "signature"}:
        raise ACMEProblem("malformed", "JWS must have exactly protected, payload and signature")
    prot, payload_b64, sig_b64 = obj["protected"], obj["payload"], obj["signature"]
    header = loads_strict(b64d(prot, "protected header"), "protected header")
    if not isinstance(header, dict):
        raise ACMEProblem("malformed", "protected header must be a JSON object")
    payload = b64d(payload_b64, "payload")
    signature = b64d(sig_b64, "signature")
    if "crit" in header:
        raise ACMEProblem("malformed", "unsupported critical header parameters")
    if header.get("b64", True) is not True:
        raise ACMEProblem("malformed", "unencoded payloads are not supported")
    alg = header.get("alg")
    mac_ok = allow_mac and alg in ("HS256", "HS384", "HS512")
    if not mac_ok and alg not in ALGORITHMS:
        raise ACMEProblem(
            "badSignatureAlgorithm",
            f"unsupported signature algorithm {str(alg)[:20]!r}",
            extra={"algorithms": list(ALGORITHMS)},
        )
    return JWS(header, payload, signature, f"{prot}.{payload_b64}".encode("ascii"))


def public_key(jwk: Any) -> PublicKey:
    """Load a public JWK; refuse private keys, symmetric keys and weak RSA.

    Parsed keys are cached by their canonical JSON: every authenticated
    request loads its account key, and parsing is pure, so the cache can
    only save work, never change an answer.
    """
    if not isinstance(jwk, dict):
        raise ACMEProblem("malformed", "jwk must be a JSON object")
    try:
        text = json.dumps(jwk, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ACMEProblem("badPublicKey", "jwk is not a valid public key") from exc
    return _public_key_cached(text)


@functools.lru_cache(maxsize=4096)
def _public_key_cached(text: str) -> PublicKey:
    jwk = json.loads(text)
    if _PRIVATE_MEMBERS & set(jwk):
        raise ACMEProblem("badPublicKey", "jwk must be a public key")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            key: Any = ECAlgorithm.from_jwk(jwk)
        elif kty == "RSA":
            key = RSAAlgorithm.from_jwk(jwk)
        elif kty == "OKP":
            key = OKPAlgorithm.from_jwk(jwk)
        else:
            raise ACMEProblem("badPublicKey", "unsupported key type")
    except ACMEProblem:
        raise
    except Exception as exc:  # PyJWT raises InvalidKeyError, ValueError, KeyError...
        raise ACMEProblem("badPublicKey", "jwk is not a valid public key") from exc
    if not isinstance(key, PublicKey):
        raise ACMEProblem("badPublicKey", "jwk must be a public key")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise ACMEProblem("badPublicKey", f"RSA keys must be at least {_MIN_RSA_BITS} bits")
    return key


def _verifier(alg: str, key: PublicKey) -> Any:
    if alg in _EC_CURVES:
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return None
        want = {"P-256": "secp256r1", "P-384": "secp384r1", "P-521": "secp521r1"}[_EC_CURVES[alg]]
        if key.curve.name != want:
            return None
        return ECAlgorithm(getattr(ECAlgorithm, "SHA" + alg[2:]))
    if alg.startswith("RS"):
        return RSAAlgorithm(getattr(RSAAlgorithm, "SHA" + alg[2:])) if isinstance(key, rsa.RSAPublicKey) else None
    if alg.startswith("PS"):
        return RSAPSSAlgorithm(getattr(RSAPSSAlgorithm, "SHA" + alg[2:])) if isinstance(key, rsa.RSAPublicKey) else None
    if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return OKPAlgorithm()
    return None


def verify(jws: JWS, key: PublicKey) -> None:
    """Check the signature with `key`; the key type must fit `alg`."""
    verifier = _verifier(jws.alg, key)
    if verifier is None:
        raise ACMEProblem(
            "badSignatureAlgorithm",
            f"algorithm {jws.alg} does not match the key type",
            extra={"algorithms": list(ALGORITHMS)},
        )
    try:
        ok = bool(verifier.verify(jws.signing_input, key, jws.signature))
    except Exception:  # malformed signature bytes
        ok = False
    if not ok:
        raise ACMEProblem("malformed", "JWS signature is invalid")


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url (JOSE-07)."""
    members = {
        "EC": ("crv", "kty", "x", "y"),
        "RSA": ("e", "kty", "n"),
        "OKP": ("crv", "kty", "x"),
    }.get(str(jwk.get("kty")))
    if members is None:
        raise ACMEProblem("badPublicKey", "unsupported key type")
    try:
        canon = {m: jwk[m] for m in members}
    except KeyError as exc:
        raise ACMEProblem("badPublicKey", "jwk is missing required members") from exc
    text = json.dumps(canon, separators=(",", ":"), sort_keys=True)
    return b64e(hashlib.sha256(text.encode("utf-8")).digest())


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """Only the public members we store (drops `kid`, `use`, `alg` and the like)."""
    members = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "n", "e"), "OKP": ("kty", "crv", "x")}
    return {m: jwk[m] for m in members.get(str(jwk.get("kty")), ()) if m in jwk}
