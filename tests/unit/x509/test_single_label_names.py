"""Single-label DNS names (`localhost`) stay allowed, as in step-ca (issue 12, item 4).

A private CA issues them; pkilint's `pkix.invalid_domain_name_syntax` finding
for them is a public-web rule, so this module's lint fixture tolerates that one
finding on a single-label dNSName and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.helpers import make_csr, mint_sign_token, pkilint_errors


@pytest.fixture(autouse=True)
def _lint_every_issued_certificate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from shared.authority_records import IssuanceRecorder

    issued: list[bytes] = []
    original = IssuanceRecorder.record

    def recording(self: IssuanceRecorder, cert, *args, **kwargs):  # type: ignore[no-untyped-def]
        issued.append(cert.public_bytes(serialization.Encoding.DER))
        return original(self, cert, *args, **kwargs)

    monkeypatch.setattr(IssuanceRecorder, "record", recording)
    yield
    assert issued
    for der in issued:
        findings = pkilint_errors(der)
        assert all(f.endswith("dNSName: pkix.invalid_domain_name_syntax") for f in findings), findings


def test_single_label_names_stay_allowed(api, authority_dir: Path) -> None:
    csr, _ = make_csr("localhost", ["localhost"])
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "localhost", ["localhost"])})
    assert r.status_code == 201, r.text
    san = x509.load_pem_x509_certificate(r.get_json()["crt"].encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
