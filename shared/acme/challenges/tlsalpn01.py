"""tls-alpn-01 validation (RFC 8737, ALPN-01/02, IP-01).

Connect with ALPN `acme-tls/1` only and SNI = the name (the reverse-DNS name
for IP identifiers); the server must negotiate that protocol and present a
certificate with exactly one SAN equal to the identifier and a critical
acmeIdentifier extension holding SHA-256(keyAuthorization).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import ssl

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from shared.acme.challenges.addresses import pick_address
from shared.acme.challenges.deadline import Deadline
from shared.acme.config import ACMEProvisionerConfig
from shared.acme.identifiers import Identifier
from shared.acme.problems import ACMEProblem

ACME_IDENTIFIER_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
ALPN = "acme-tls/1"


def _peer_certificate(host: str, sni: str, config: ACMEProvisionerConfig, deadline: Deadline) -> bytes:
    ip = pick_address(host, config, deadline)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols([ALPN])
    try:
        with socket.create_connection((str(ip), config.tlsalpn01_port), timeout=deadline.timeout()) as raw:
            # One timeout for the handshake as a whole (CPython's do_handshake counts it down across reads).
            raw.settimeout(deadline.timeout())
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                if tls.selected_alpn_protocol() != ALPN:
                    raise ACMEProblem("tls", "server did not negotiate the acme-tls/1 protocol")
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        if deadline.remaining() <= 0:  # a step that timed out at the deadline
            raise deadline.problem("tls") from exc
        raise ACMEProblem("tls", f"TLS connection to {host} failed") from exc
    if not der:
        raise ACMEProblem("tls", "no certificate presented")
    return der


def validate(
    identifier: Identifier,
    token: str,
    key_authorization: str,
    config: ACMEProvisionerConfig,
    deadline: Deadline | None = None,
) -> None:
    """Raise an ACMEProblem unless the validation certificate is right (all by `deadline`)."""
    deadline = deadline or Deadline.start(config)
    if identifier.type == "ip":
        sni = ipaddress.ip_address(identifier.value).reverse_pointer
    else:
        sni = identifier.base
    cert = x509.load_der_x509_certificate(_peer_certificate(identifier.base, sni, config, deadline))
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except (x509.ExtensionNotFound, ValueError) as exc:
        raise ACMEProblem("unauthorized", "validation certificate lacks SAN or acmeIdentifier") from exc
    names = list(sans)
    if identifier.type == "ip":
        ok = (
            len(names) == 1
            and isinstance(names[0], x509.IPAddress)
            and (names[0].value == ipaddress.ip_address(identifier.value))
        )
    else:
        ok = len(names) == 1 and isinstance(names[0], x509.DNSName) and (names[0].value.lower() == identifier.base)
    if not ok:
        raise ACMEProblem("unauthorized", "validation certificate must have exactly the identifier as SAN")
    if not ext.critical:
        raise ACMEProblem("unauthorized", "acmeIdentifier extension must be critical")
    value = getattr(ext.value, "value", b"")
    want = b"\x04\x20" + hashlib.sha256(key_authorization.encode("ascii")).digest()
    if not hmac.compare_digest(value, want):
        raise ACMEProblem("incorrectResponse", "acmeIdentifier does not match the key authorization")
