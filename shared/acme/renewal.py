"""ACME Renewal Information (RFC 9773, ARI-01).

A certificate ID is base64url(AKI keyIdentifier) "." base64url(serial DER
content bytes). The suggested window is the last third of the lifetime,
starting at two thirds; a revoked certificate gets a window that is already
open so clients replace it at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509

from shared.acme import jws
from shared.acme.context import Ctx, Reply, Services
from shared.acme.problems import ACMEProblem
from shared.acme.repo import ts

RETRY_AFTER = 6 * 3600


def cert_id(cert: x509.Certificate) -> str:
    """The RFC 9773 certificate identifier of `cert`."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    serial = cert.serial_number
    der = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    return f"{jws.b64e(aki.key_identifier or b'')}.{jws.b64e(der)}"


def parse_cert_id(text: Any) -> tuple[bytes, str]:
    """Return (AKI key id, decimal serial) or raise malformed."""
    if not isinstance(text, str) or text.count(".") != 1:
        raise ACMEProblem("malformed", "invalid certificate identifier")
    aki_b64, serial_b64 = text.split(".")
    aki, serial = (
        jws.b64d(aki_b64, "certificate identifier"),
        jws.b64d(serial_b64, "certificate identifier"),
    )
    if not aki or not serial or serial[0] & 0x80:
        raise ACMEProblem("malformed", "invalid certificate identifier")
    return aki, str(int.from_bytes(serial, "big"))


def lookup(svc: Services, text: Any) -> x509.Certificate:
    """The certificate a certificate identifier names, or 404."""
    aki, serial = parse_cert_id(text)
    record = svc.certificates.get_certificate(serial)
    if record is None or str(record.kind) != "x509":  # an SSH certificate's serial names nothing here
        raise ACMEProblem("malformed", "certificate not found", status=404)
    cert = x509.load_der_x509_certificate(record.der)
    try:
        cert_aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        cert_aki = None
    if cert_aki is None or cert_aki.key_identifier != aki:
        raise ACMEProblem("malformed", "certificate not found", status=404)
    return cert


def renewal_info(svc: Services, ctx: Ctx, text: str) -> Reply:
    """GET renewalInfo/{certID}."""
    cert = lookup(svc, text)
    nb, na = cert.not_valid_before_utc, cert.not_valid_after_utc
    revoked = svc.revocations is not None and svc.revocations.get_revocation(str(cert.serial_number)) is not None
    if revoked:
        now = svc.clock.now()
        start, end = now - dt.timedelta(hours=1), now
    else:
        life = na - nb
        start, end = nb + life * 2 / 3, nb + life * 5 / 6
    return Reply(
        200,
        {"suggestedWindow": {"start": ts(start), "end": ts(end)}},
        {"Retry-After": str(RETRY_AFTER)},
    )
