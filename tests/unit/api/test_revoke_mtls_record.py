"""mTLS `POST /revoke` (issue 12 item 16): the presented certificate must be the recorded one, as for /renew.

Matching the serial alone let any certificate carrying a recorded serial
(another authority's, or one forged with the same serial) revoke it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.unit.api.test_stepca_lifecycle import issue, mtls


def _same_serial_other_certificate(cert: x509.Certificate) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(key.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )


def test_mtls_revoke_with_another_certificate_of_the_same_serial_is_refused(api, authority_dir: Path) -> None:  # type: ignore[no-untyped-def]
    cert, _, _ = issue(api, authority_dir)
    serial = str(cert.serial_number)
    forged = _same_serial_other_certificate(cert)
    r = api.post("/1.0/revoke", json={"serial": serial, "passive": True}, environ_overrides=mtls(forged))
    assert r.status_code == 401 and "message" in r.get_json()
    r = api.post("/1.0/renew", environ_overrides=mtls(cert))  # still not revoked
    assert r.status_code == 201, r.text
    r = api.post("/1.0/revoke", json={"serial": serial, "passive": True}, environ_overrides=mtls(cert))
    assert r.status_code == 200, r.text
