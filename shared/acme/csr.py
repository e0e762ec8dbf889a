"""Finalize-time CSR checks (ACME-11, BR-02).

The CSR must be validly self-signed, name exactly the order's identifiers
(SANs, plus the CN if one is set), carry no other name types, and hold an
acceptable key that is not the account key (RFC 8555 s.11.1).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from shared.acme.identifiers import Identifier
from shared.acme.jws import PublicKey
from shared.acme.problems import ACMEProblem
from shared.errors import BadRequest
from shared.x509 import goodkey
from shared.x509.csr import check_structure


def load(text: object) -> x509.CertificateSigningRequest:
    """Decode the base64url DER CSR (padding tolerated, as step-ca does)."""
    if not isinstance(text, str) or not text:
        raise ACMEProblem("malformed", "csr must be a base64url string")
    try:
        der = base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
        csr = x509.load_der_x509_csr(der)
    except x509.InvalidVersion as exc:
        raise ACMEProblem("badCSR", "csr version must be 0 (v1)") from exc
    except (binascii.Error, ValueError) as exc:
        raise ACMEProblem("badCSR", "csr could not be parsed") from exc
    try:
        check_structure(csr)
    except BadRequest as exc:
        raise ACMEProblem("badCSR", exc.detail) from exc
    return csr


def check_key(key: object) -> None:
    """BR-02 key policy: Boulder's goodkey checks (`shared.x509.goodkey`)."""
    try:
        goodkey.check(key)
    except goodkey.BadKey as exc:
        raise ACMEProblem("badCSR", str(exc)) from exc


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
    try:
        valid = csr.is_signature_valid
        key = csr.public_key()
    except Exception as exc:  # unsupported key or signature algorithms raise from the Rust layer
        raise ACMEProblem("badCSR", "CSR key or signature algorithm is not supported") from exc
    if not valid:
        raise ACMEProblem("badCSR", "CSR signature is invalid")
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
