"""The CSR measured against its sign token (step-ca's JWK validators, reference s.2.3).

The CSR's common name must be the token's subject or one of its SANs; each kind of
SAN the CSR lists (DNS, IP, email, URI) must be exactly the token's set of that kind;
a `cnf` fingerprint in the token must be the CSR's. The certificate's names always
come from the token, never the CSR.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.errors import Forbidden
from shared.provisioners.base import SignAuthorization
from shared.x509.names import SANs, common_name_of, typed_sans_of


def check_csr_against_token(
    csr: x509.CertificateSigningRequest, auth: SignAuthorization, token_sans: SANs
) -> None:
    """step-ca's JWK validators: CN and SAN sets must be what the token allows.

    Raises:
        Forbidden: a name or the `cnf` fingerprint is not what the token allows.
    """
    allowed = {auth.subject.lower(), *(s.lower() for s in auth.sans)}
    cn = common_name_of(csr.subject)
    if cn and cn.lower() not in allowed:
        raise Forbidden(
            f"certificate request does not contain the valid common name - got {cn}, want {auth.subject}"
        )
    _check_csr_sans(csr, token_sans)
    if auth.csr_fingerprint is not None:
        der = csr.public_bytes(serialization.Encoding.DER)
        fp = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        if fp != auth.csr_fingerprint:
            raise Forbidden("certificate request fingerprint does not match the token")

def _check_csr_sans(csr: x509.CertificateSigningRequest, token_sans: SANs) -> None:
    """Each kind of name the CSR lists (by its own type, never re-guessed from text) must be the token's set."""
    try:
        csr_sans = typed_sans_of(csr)
    except ValueError as exc:
        raise Forbidden(f"invalid subject alternative name: {exc}") from exc
    for kind in ("dns", "ips", "emails", "uris"):
        got = set(map(str, getattr(csr_sans, kind)))
        want = set(map(str, getattr(token_sans, kind)))
        if got and got != want:
            raise Forbidden(
                f"certificate request does not contain the valid {kind} names"
                f" - got {sorted(got)}, want {sorted(want)}"
            )
