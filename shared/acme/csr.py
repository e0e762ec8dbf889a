"""Finalize-time CSR checks (ACME-11, BR-02).

The CSR must be validly self-signed, name exactly the order's identifiers
(SANs, plus the CN if one is set), carry no other name types, and hold an
acceptable key that is not the account key (RFC 8555 s.11.1).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from shared.acme.identifiers import Identifier
from shared.acme.jws import PublicKey
from shared.acme.problems import ACMEProblem

_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_FERMAT_ROUNDS = 100


def load(text: object) -> x509.CertificateSigningRequest:
    """Decode the base64url DER CSR (padding tolerated, as step-ca does)."""
    if not isinstance(text, str) or not text:
        raise ACMEProblem("malformed", "csr must be a base64url string")
    try:
        der = base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
        return x509.load_der_x509_csr(der)
    except (binascii.Error, ValueError) as exc:
        raise ACMEProblem("badCSR", "csr could not be parsed") from exc


def _fermat_factorable(n: int) -> bool:
    """Boulder's TestFermat: primes too close together factor at once."""
    a = math.isqrt(n)
    if a * a < n:
        a += 1
    for _ in range(_FERMAT_ROUNDS):
        b2 = a * a - n
        b = math.isqrt(b2)
        if b * b == b2:
            return True
        a += 1
    return False


def check_key(key: object) -> None:
    """BR-02 key policy."""
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        if key.key_size < 2048 or key.key_size > 8192 or key.key_size % 8:
            raise ACMEProblem("badCSR", "RSA keys must be 2048-8192 bits, a multiple of 8")
        if nums.e < 3 or nums.e % 2 == 0:
            raise ACMEProblem("badCSR", "RSA public exponent must be odd and at least 3")
        if _fermat_factorable(nums.n):
            raise ACMEProblem("badCSR", "the key is weak (Fermat factorable)")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise ACMEProblem("badCSR", "ECDSA keys must be on P-256, P-384 or P-521")
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    raise ACMEProblem("badCSR", "unsupported key type")


def _spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check(
    csr: x509.CertificateSigningRequest,
    identifiers: Sequence[Identifier],
    *,
    account_key: PublicKey,
) -> None:
    """Raise badCSR unless the CSR fits the order exactly."""
    if not csr.is_signature_valid:
        raise ACMEProblem("badCSR", "CSR signature is invalid")
    key = csr.public_key()
    check_key(key)
    if _spki(key) == _spki(account_key):
        raise ACMEProblem("badCSR", "the certificate key must differ from the account key")
    names: set[Identifier] = set()
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    for gn in sans:
        if isinstance(gn, x509.DNSName):
            names.add(Identifier("dns", gn.value.lower().rstrip(".")))
        elif isinstance(gn, x509.IPAddress):
            names.add(Identifier("ip", str(gn.value)))
        else:
            raise ACMEProblem("badCSR", "CSR may only contain DNS names and IP addresses")
    want = set(identifiers)
    for attr in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        cn = str(attr.value).lower().rstrip(".")
        try:
            cn_ident = Identifier("ip", str(ipaddress.ip_address(cn)))
        except ValueError:
            cn_ident = Identifier("dns", cn)
        if cn_ident not in want:
            raise ACMEProblem("badCSR", "CSR common name is not one of the order identifiers")
        names.add(cn_ident)
    if names != want:
        raise ACMEProblem("badCSR", "CSR names do not match the order identifiers exactly")
