"""Issue 12, items 1, 4 and 5 on the step API: every hostile CSR is a 400/403 naming the problem.

Each CSR below is signed with a real key, so it is refused for what it is,
not for a bad signature; each went to the generic 500 handler (or got a
certificate) before the fix. The same CSRs go through `/sign`, `/1.0/sign`
and `/1.0/rekey`; `tests/unit/acme/test_acme_finalize_csr.py` drives them
through ACME finalize.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests import csr_der as D
from tests.helpers import make_csr, mint_sign_token
from tests.keys_weak import close_primes_rsa_key

SAN = D.OID_SAN


def _san_csr(*names: bytes, cn: str | None = "app.example.com") -> bytes:
    return D.csr(cn=cn, attributes=[D.extension_request(D.seq(D.extension(SAN, D.san_value(*names))))])


# name -> (DER of the CSR, words the 400's message must contain)
HOSTILE = D.hostile_csrs(D.dns("app.example.com"), "app.example.com")


@pytest.fixture
def no_unhandled(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail if a request reached the generic 500 handler (it logs "unhandled error")."""
    caplog.set_level(logging.ERROR, logger="cirrus.api")
    yield
    assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]


def _token(authority_dir: Path) -> str:
    return mint_sign_token(authority_dir, "app.example.com", ["app.example.com", "10.0.0.1"])


@pytest.mark.usefixtures("no_unhandled")
@pytest.mark.parametrize("path", ["/sign", "/1.0/sign"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_csr_on_sign_is_400_naming_the_problem(api, authority_dir: Path, path: str, name: str) -> None:
    der, words = HOSTILE[name]
    r = api.post(path, json={"csr": D.pem(der), "ott": _token(authority_dir)})
    assert r.status_code == 400, r.text
    body = r.get_json()
    assert set(body) == {"status", "message"} and body["status"] == 400
    assert words.lower() in body["message"].lower(), body
    assert "\x00" not in body["message"]


@pytest.mark.usefixtures("no_unhandled")
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_csr_on_rekey_is_400(api, authority_dir: Path, name: str) -> None:
    csr, _ = make_csr("app.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": _token(authority_dir)})
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    mtls = {"SSL_CLIENT_CERT": cert.public_bytes(serialization.Encoding.PEM).decode()}
    der, words = HOSTILE[name]
    r = api.post("/1.0/rekey", json={"csr": D.pem(der)}, environ_overrides=mtls)
    assert r.status_code == 400, r.text
    assert words.lower() in r.get_json()["message"].lower()


@pytest.mark.usefixtures("no_unhandled")
def test_token_uri_with_control_character_is_refused(api, authority_dir: Path) -> None:
    """The token's names are checked too: a NUL in a URI the token lists never reaches a certificate."""
    csr, _ = make_csr("app.example.com")
    for bad in ("spiffe://example.org/a\x00b", "https://a.example/\x7f", "urn:x y"):
        tok = mint_sign_token(authority_dir, "app.example.com", ["app.example.com", bad])
        r = api.post("/1.0/sign", json={"csr": csr, "ott": tok})
        assert r.status_code in (400, 403), r.text
        assert "URI" in r.get_json()["message"]


@pytest.mark.usefixtures("no_unhandled")
def test_token_subject_that_cannot_be_a_common_name_is_refused(api, authority_dir: Path) -> None:
    """The token's subject becomes the CN: over 64 characters was a 500, a NUL got a certificate."""
    csr, _ = make_csr(None, ["app.example.com"])
    for subject in ("a" * 65, "app\x00.example.com", "app\n.example.com"):
        tok = mint_sign_token(authority_dir, subject, ["app.example.com"])
        r = api.post("/1.0/sign", json={"csr": csr, "ott": tok})
        assert r.status_code == 403, (subject, r.text)
        assert "common name" in r.get_json()["message"]


@pytest.mark.usefixtures("no_unhandled")
def test_ip_literal_in_token_is_issued_as_ip_address(api, authority_dir: Path) -> None:
    """step-ca's SplitSANs: a token name that parses as an IP becomes an iPAddress SAN, never a dNSName."""
    csr, _ = make_csr("app.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": _token(authority_dir)})
    assert r.status_code == 201, r.text
    san = x509.load_pem_x509_certificate(r.get_json()["crt"].encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]


@pytest.mark.usefixtures("no_unhandled")
def test_csr_names_are_compared_by_their_own_type(api, authority_dir: Path) -> None:
    """A CSR URI `fe80::1` is a URI, not the token's IP address `fe80::1` (step-ca: 403)."""
    der = _san_csr(D.dns("app.example.com"), D.uri("fe80::1"))
    tok = mint_sign_token(authority_dir, "app.example.com", ["app.example.com", "fe80::1"])
    r = api.post("/1.0/sign", json={"csr": D.pem(der), "ott": tok})
    assert r.status_code == 403, r.text
    assert "uris" in r.get_json()["message"]


@pytest.mark.usefixtures("no_unhandled")
def test_close_primes_rsa_key_is_refused_on_sign_and_rekey(api, authority_dir: Path) -> None:
    """Boulder's Fermat check (the other goodkey rules: tests/unit/x509/test_goodkey.py)."""
    words = "Fermat"
    key = close_primes_rsa_key()
    weak, _ = make_csr("app.example.com", key=key)
    r = api.post("/1.0/sign", json={"csr": weak, "ott": _token(authority_dir)})
    assert r.status_code == 403, r.text
    assert words in r.get_json()["message"]
    csr, _ = make_csr("app.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": _token(authority_dir)})
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    mtls = {"SSL_CLIENT_CERT": cert.public_bytes(serialization.Encoding.PEM).decode()}
    r = api.post("/1.0/rekey", json={"csr": weak}, environ_overrides=mtls)
    assert r.status_code == 403, r.text
    assert words in r.get_json()["message"]


@pytest.mark.usefixtures("no_unhandled")
def test_off_curve_ec_point_is_refused(api, authority_dir: Path) -> None:
    """A P-256 SPKI whose point is not on the curve: refused as a CSR, never a 500."""
    spki = bytearray(D.spki(D.signing_key()))
    spki[-1] ^= 0x01  # the last byte of y: the point leaves the curve
    info = D.seq(D.integer(0), D.name_cn("app.example.com"), bytes(spki), D.tlv(0xA0, b""))
    r = api.post("/1.0/sign", json={"csr": D.pem(D.signed_csr(info)), "ott": _token(authority_dir)})
    assert r.status_code in (400, 403), r.text
