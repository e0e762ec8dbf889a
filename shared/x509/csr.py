"""Parsing certificate signing requests and the key policy applied to them.

Everything here runs at the trust boundary, so every failure is a
`BadRequest`/`Forbidden` with a short safe message; parser exceptions never
reach the client. `check_structure` decodes every lazily parsed part of a CSR
up front (ACME finalize uses it too), and the key policy is Boulder's goodkey
(`shared.x509.goodkey`).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from shared.errors import BadRequest, Forbidden
from shared.keys.base import PublicKey
from shared.x509 import goodkey
from shared.x509.names import check_common_name, check_general_names

MAX_CSR_BYTES = 32 * 1024


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
    except x509.InvalidVersion as exc:
        raise BadRequest("invalid csr: version must be 0 (v1)") from exc
    except (ValueError, TypeError) as exc:
        raise BadRequest("invalid csr") from exc
    check_structure(csr)
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
    """Apply the key policy (BR-02, Boulder's goodkey; see `shared.x509.goodkey`).

    Raises:
        Forbidden: the key type, size, exponent, curve or point is not allowed.
    """
    try:
        goodkey.check(key)
    except goodkey.BadKey as exc:
        raise Forbidden(str(exc)) from exc
    return key  # type: ignore[return-value]  # goodkey.check admits only PublicKey's members


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


def check_structure(csr: x509.CertificateSigningRequest) -> None:
    """Decode every part of `csr` the CA reads, refusing what does not decode or breaks a rule.

    `cryptography` decodes the subject, attributes and extensions lazily, on
    first access, and raises its own errors there (`DuplicateExtension`,
    `ValueError` for a short SAN, a 5-byte iPAddress or a multi-valued
    attribute): reading them all here, inside the trust boundary, turns each
    into a 400 that names the problem instead of a 500 later on.

    Raises:
        BadRequest: a part of the CSR is malformed; the message says which.
    """
    try:
        subject = csr.subject
    except ValueError as exc:
        raise BadRequest("invalid csr: malformed subject") from exc
    for attr in subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        if isinstance(attr.value, str) and attr.value:  # an empty CN is as good as none: the CA ignores it
            try:
                check_common_name(attr.value)
            except ValueError as exc:
                raise BadRequest(f"invalid csr: subject {exc}") from exc
    try:
        for _ in csr.attributes:
            pass
    except ValueError as exc:
        detail = "an attribute has several values" if "single-valued" in str(exc) else "malformed attributes"
        raise BadRequest(f"invalid csr: {detail}") from exc
    try:
        extensions = csr.extensions
    except x509.DuplicateExtension as exc:
        raise BadRequest(f"invalid csr: extension {_ext_name(exc.oid)} appears more than once") from exc
    except x509.UnsupportedGeneralNameType as exc:
        raise BadRequest("invalid csr: unsupported general name type in an extension") from exc
    except ValueError as exc:
        text = str(exc)
        if "subject_alternative_name" in text or "IPv4 or IPv6" in text or "host bits" in text:
            raise BadRequest("invalid csr: malformed subjectAltName extension") from exc
        raise BadRequest("invalid csr: malformed extension request") from exc
    for ext in extensions:
        if isinstance(ext.value, x509.SubjectAlternativeName):
            try:
                check_general_names(ext.value)
            except ValueError as exc:
                raise BadRequest(f"invalid csr: {exc}") from exc


_EXTENSION_NAMES = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME: "subjectAltName",
    ExtensionOID.KEY_USAGE: "keyUsage",
    ExtensionOID.EXTENDED_KEY_USAGE: "extKeyUsage",
    ExtensionOID.BASIC_CONSTRAINTS: "basicConstraints",
}


def _ext_name(oid: x509.ObjectIdentifier) -> str:
    return _EXTENSION_NAMES.get(oid, oid.dotted_string)
