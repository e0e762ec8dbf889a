"""Parsing certificate signing requests and the key policy applied to them.

Everything here runs at the trust boundary, so every failure is a
`BadRequest`/`Forbidden` with a short safe message; parser exceptions never
reach the client.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from shared.errors import BadRequest, Forbidden
from shared.keys.base import PublicKey

MAX_CSR_BYTES = 32 * 1024
_ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def parse_csr(text: str | bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM (or DER) CSR and verify its self-signature.

    Raises:
        BadRequest: missing, oversized, unparsable or badly signed CSR.
    """
    return parse_csr_and_key(text)[0]


# The signature algorithms, made once (they are immutable): an `ECDSA` object is
# Python-level work on every verify otherwise.
_ECDSA: dict[x509.ObjectIdentifier, ec.ECDSA] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: ec.ECDSA(hashes.SHA256()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: ec.ECDSA(hashes.SHA384()),
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: ec.ECDSA(hashes.SHA512()),
}


def parse_csr_and_key(text: str | bytes) -> tuple[x509.CertificateSigningRequest, object]:
    """`parse_csr`, also returning the CSR's public key (before the key policy; None if unparsable).

    Why: `is_signature_valid` decodes the public key again on every call, and
    the issuing path needs the key anyway; for ECDSA CSRs (the common case)
    the signature is checked with the key decoded once. Other algorithms go
    through `is_signature_valid`.

    Raises:
        BadRequest: missing, oversized, unparsable or badly signed CSR.
    """
    if not text:
        raise BadRequest("missing csr")
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    if len(data) > MAX_CSR_BYTES:
        raise BadRequest("invalid csr: too large")
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except (ValueError, TypeError) as exc:
        raise BadRequest("invalid csr") from exc
    try:
        key: object = csr.public_key()
    except Exception:  # unsupported key encodings: refused later by the key policy
        key = None
    algorithm = _ECDSA.get(csr.signature_algorithm_oid)
    if algorithm is not None and isinstance(key, ec.EllipticCurvePublicKey):
        try:
            key.verify(csr.signature, csr.tbs_certrequest_bytes, algorithm)
            valid = True
        except InvalidSignature:
            valid = False
    else:
        try:
            valid = csr.is_signature_valid
        except Exception as exc:  # unsupported algorithms raise from the Rust layer
            raise BadRequest("invalid csr: unsupported signature algorithm") from exc
    if not valid:
        raise BadRequest("invalid csr: signature does not verify")
    return csr, key


def check_public_key(key: object) -> PublicKey:
    """Apply the key policy (BR-02): RSA >= 2048 and a sane exponent, P-256/384/521, Ed25519.

    Raises:
        Forbidden: the key type, size or exponent is not allowed.
    """
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        if key.key_size < 2048:
            raise Forbidden(f"rsa key in CSR must be at least 2048 bits, got {key.key_size}")
        if key.key_size % 8 != 0:
            raise Forbidden("rsa key size must be a multiple of 8")
        if key.key_size > 8192:
            raise Forbidden("rsa key larger than 8192 bits is not supported")
        if numbers.e % 2 == 0 or numbers.e < 65537 or numbers.e >= 1 << 256:
            raise Forbidden("rsa public exponent must be odd and between 2^16+1 and 2^256-1")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _ALLOWED_CURVES):
            raise Forbidden(f"elliptic curve {key.curve.name} is not allowed")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise Forbidden("unsupported public key type")


def csr_public_key(csr: x509.CertificateSigningRequest, key: object = None) -> PublicKey:
    """Return the CSR's public key (or `key`, already decoded from it) after the key policy.

    Raises:
        BadRequest: the key cannot be parsed.
        Forbidden: the key is not allowed.
    """
    if key is not None:
        return check_public_key(key)
    try:
        key = csr.public_key()
    except Exception as exc:  # unsupported key encodings
        raise BadRequest("invalid csr: unsupported public key") from exc
    return check_public_key(key)
