"""POST /revoke: one test per refusal, each leaving the certificate unrevoked (issue 12's thin spot).

Statuses follow step-ca (reference s.3.5 and issue 12 item 9): no credential 400,
a valid token for another serial 403, a bad token 401, a wrong type 400.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims
from tests.unit.api.hostile_support import assert_step_error, revocation_count

pytestmark = pytest.mark.hostile


@pytest.fixture
def issued(api, authority_dir: Path) -> x509.Certificate:
    csr, _ = make_csr("svc.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "svc.example.com")})
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.get_json()["crt"].encode())


def _tok(authority_dir: Path, sub: str, **extra) -> str:
    return mint_token(authority_dir, sign_claims(sub, None, op="revoke", **extra))


def _revoke(api, **body):
    return api.post("/1.0/revoke", json=body)


def _mtls(cert: x509.Certificate) -> dict[str, str]:
    return {"SSL_CLIENT_CERT": cert.public_bytes(serialization.Encoding.PEM).decode()}


@pytest.fixture
def serial(issued: x509.Certificate) -> str:
    return str(issued.serial_number)


@pytest.fixture(autouse=True)
def _nothing_revoked(request: pytest.FixtureRequest, authority_dir: Path):
    yield
    if "accepted" not in request.node.name:
        assert revocation_count(authority_dir) == 0


def test_accepted_with_token(api, authority_dir: Path, serial: str) -> None:
    assert _revoke(api, serial=serial, ott=_tok(authority_dir, serial), passive=True).status_code == 200
    assert revocation_count(authority_dir) == 1


def test_accepted_with_client_certificate(api, issued: x509.Certificate, authority_dir: Path) -> None:
    r = api.post("/1.0/revoke", json={"serial": str(issued.serial_number), "passive": True}, environ_overrides=_mtls(issued))
    assert r.status_code == 200
    assert revocation_count(authority_dir) == 1


def test_passive_false_is_501(api, authority_dir: Path, serial: str) -> None:
    assert_step_error(_revoke(api, serial=serial, ott=_tok(authority_dir, serial), passive=False), 501)


def test_passive_missing_is_501(api, authority_dir: Path, serial: str) -> None:
    assert_step_error(_revoke(api, serial=serial, ott=_tok(authority_dir, serial)), 501)


def test_passive_string_is_400(api, authority_dir: Path, serial: str) -> None:
    assert_step_error(_revoke(api, serial=serial, ott=_tok(authority_dir, serial), passive="true"), 400, "passive")


def test_serial_missing_is_400(api, authority_dir: Path, serial: str) -> None:
    assert_step_error(_revoke(api, ott=_tok(authority_dir, serial), passive=True), 400, "serial")


def test_serial_not_a_string_is_400(api, authority_dir: Path, issued: x509.Certificate) -> None:
    serial = str(issued.serial_number)
    assert_step_error(_revoke(api, serial=issued.serial_number, ott=_tok(authority_dir, serial), passive=True), 400)


@pytest.mark.parametrize("bad", ["zz", "0", "-1", "0x0", str(1 << 159), "\uff11"])
def test_serial_malformed_is_400(api, authority_dir: Path, bad: str) -> None:
    assert_step_error(_revoke(api, serial=bad, ott=_tok(authority_dir, bad), passive=True), 400, "serial")


@pytest.mark.parametrize("code", [6, 7, 8, 11, -1, "1", True, 1.0])
def test_reason_code_refused_is_400(api, authority_dir: Path, serial: str, code: object) -> None:
    r = _revoke(api, serial=serial, ott=_tok(authority_dir, serial), passive=True, reasonCode=code)
    assert_step_error(r, 400, "reasonCode")


@pytest.mark.parametrize("reason", ["x" * 257, 5, ["a"]])
def test_reason_refused_is_400(api, authority_dir: Path, serial: str, reason: object) -> None:
    r = _revoke(api, serial=serial, ott=_tok(authority_dir, serial), passive=True, reason=reason)
    assert_step_error(r, 400, "reason")


def test_ott_not_a_string_is_400(api, serial: str) -> None:
    assert_step_error(_revoke(api, serial=serial, ott=5, passive=True), 400, "ott")


def test_neither_token_nor_client_certificate_is_400(api, serial: str) -> None:
    assert_step_error(_revoke(api, serial=serial, passive=True), 400, "client certificate")


def test_token_for_another_serial_is_403(api, authority_dir: Path, serial: str) -> None:
    assert_step_error(_revoke(api, serial=serial, ott=_tok(authority_dir, "123"), passive=True), 403, "serial")


def test_token_subject_not_a_serial_is_403(api, authority_dir: Path, serial: str) -> None:
    assert_step_error(_revoke(api, serial=serial, ott=_tok(authority_dir, "svc.example.com"), passive=True), 403)


def test_sign_token_is_401(api, authority_dir: Path, serial: str) -> None:
    tok = mint_token(authority_dir, sign_claims(serial, None))
    assert_step_error(_revoke(api, serial=serial, ott=tok, passive=True), 401, "audience")


def test_expired_token_is_401(api, authority_dir: Path, serial: str) -> None:
    t = int(time.time()) - 3600
    assert_step_error(_revoke(api, serial=serial, ott=_tok(authority_dir, serial, now=t), passive=True), 401, "expired")


def test_token_signed_by_another_key_is_401(api, authority_dir: Path, serial: str) -> None:
    tok = mint_token(authority_dir, sign_claims(serial, None, op="revoke"), key=ec.generate_private_key(ec.SECP256R1()))
    assert_step_error(_revoke(api, serial=serial, ott=tok, passive=True), 401, "signature")


def test_token_without_jti_is_401(api, authority_dir: Path, serial: str) -> None:
    claims = sign_claims(serial, None, op="revoke")
    del claims["jti"]
    assert_step_error(_revoke(api, serial=serial, ott=mint_token(authority_dir, claims), passive=True), 401, "jti")


def test_unknown_serial_is_404(api, authority_dir: Path) -> None:
    assert_step_error(_revoke(api, serial="12345", ott=_tok(authority_dir, "12345"), passive=True), 404)


def test_client_certificate_for_another_serial_is_403(api, authority_dir: Path, issued: x509.Certificate) -> None:
    csr, _ = make_csr("other.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "other.example.com")})
    other = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    r = api.post("/1.0/revoke", json={"serial": str(other.serial_number), "passive": True}, environ_overrides=_mtls(issued))
    assert_step_error(r, 403, "serial")


def test_replayed_token_is_401_after_one_accepted_use(api, authority_dir: Path, serial: str) -> None:
    tok = _tok(authority_dir, serial)
    assert _revoke(api, serial=serial, ott=tok, passive=True, reasonCode=99).status_code == 400  # not used up
    assert _revoke(api, serial=serial, ott=tok, passive=True).status_code == 200
    assert_step_error(_revoke(api, serial=serial, ott=tok, passive=True), 401, "token already used")
    assert revocation_count(authority_dir) == 1


def test_already_revoked_is_400_after_one_accepted_use(api, authority_dir: Path, serial: str) -> None:
    assert _revoke(api, serial=serial, ott=_tok(authority_dir, serial), passive=True).status_code == 200
    assert_step_error(_revoke(api, serial=serial, ott=_tok(authority_dir, serial), passive=True), 400, "already revoked")
    assert revocation_count(authority_dir) == 1
