"""POST /sign: the happy path, the profile, and every bad input of issue 2.

Each bad request must get step-ca's error JSON with a 4xx status and leave no
certificate, endpoint or used-token row behind.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers import make_csr, mint_sign_token, mint_token, pkilint_errors, sign_claims

pytestmark = pytest.mark.hostile  # no request may reach the generic 500 handler (tests/hostile.py)


def rows(authority_dir: Path) -> dict[str, int]:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("certificates", "endpoints", "used_tokens", "events")
        }
    finally:
        db.close()


def sign(api, csr: str, token: str, **extra):
    body = {"csr": csr, "ott": token, **extra}
    return api.post("/1.0/sign", json=body)


def test_sign_returns_step_sign_response(api, authority_dir: Path, tmp_path: Path) -> None:
    csr, _ = make_csr("app.example.com", ["app.example.com"])
    r = sign(api, csr, mint_sign_token(authority_dir, "app.example.com", ["app.example.com", "10.0.0.1"]))
    assert r.status_code == 201, r.text
    body = r.get_json()
    assert set(body) == {"crt", "ca", "certChain", "tlsOptions"}
    assert body["certChain"][0] == body["crt"] and body["certChain"][1] == body["ca"]
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    assert body["crt"] == cert.public_bytes(serialization.Encoding.PEM).decode()  # the PEM cryptography writes
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.serial_number.bit_length() >= 128
    # Default lifetime 24h plus the one-minute backdate.
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == pytest.approx(
        __import__("datetime").timedelta(hours=24, minutes=1), abs=__import__("datetime").timedelta(seconds=2)
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    assert pkilint_errors(der) == []
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(body["crt"])
    out = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(authority_dir / "certs" / "root_ca.crt"),
            "-untrusted",
            str(authority_dir / "certs" / "intermediate_ca.crt"),
            str(leaf),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert rows(authority_dir)["certificates"] == 1


@pytest.mark.parametrize(
    "keygen",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(65537, 2048),
    ],
)
def test_sign_other_key_types_lint_clean(api, authority_dir: Path, keygen) -> None:
    csr, _ = make_csr("k.example.com", key=keygen())
    r = sign(api, csr, mint_sign_token(authority_dir, "k.example.com"))
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment == isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert pkilint_errors(cert.public_bytes(serialization.Encoding.DER)) == []


def _weak_rsa_csr(bits: int, e: int = 65537) -> str:
    # cryptography refuses to generate such keys, so build them from primes.
    from cryptography.hazmat.primitives.asymmetric.rsa import (
        RSAPrivateNumbers,
        RSAPublicNumbers,
        rsa_crt_dmp1,
        rsa_crt_dmq1,
        rsa_crt_iqmp,
    )
    from sympy import nextprime, randprime  # type: ignore[import-untyped]

    half = bits // 2
    while True:
        p = randprime(2 ** (half - 1), 2**half)
        q = nextprime(p + 2 ** (half // 2))
        phi = (p - 1) * (q - 1)
        if __import__("math").gcd(e, phi) == 1:
            break
    d = pow(e, -1, phi)
    key = RSAPrivateNumbers(
        p, q, d, rsa_crt_dmp1(d, p), rsa_crt_dmq1(d, q), rsa_crt_iqmp(p, q), RSAPublicNumbers(e, p * q)
    ).private_key(unsafe_skip_rsa_key_validation=True)
    csr, _ = make_csr("weak.example.com", key=key)
    return csr


def _garbage_csrs() -> dict[str, str]:
    good, _ = make_csr("bad.example.com")
    der = x509.load_pem_x509_csr(good.encode()).public_bytes(serialization.Encoding.DER)
    tampered = bytearray(der)
    tampered[-5] ^= 0xFF  # flip a bit inside the signature
    body = good.splitlines()
    return {
        "garbage": "not a csr at all",
        "truncated_pem": "\n".join(body[: len(body) // 2]),
        "truncated_der_b64": base64.b64encode(der[: len(der) // 2]).decode(),
        "bad_signature": "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(tampered)).decode()
        + "-----END CERTIFICATE REQUEST-----\n",
    }


@pytest.mark.parametrize("name", ["garbage", "truncated_pem", "truncated_der_b64", "bad_signature"])
def test_bad_csr_is_400_and_writes_nothing(api, authority_dir: Path, name: str) -> None:
    before = rows(authority_dir)
    r = sign(api, _garbage_csrs()[name], mint_sign_token(authority_dir, "bad.example.com"))
    assert r.status_code == 400
    assert r.get_json()["status"] == 400 and "csr" in r.get_json()["message"]
    assert rows(authority_dir) == before


def test_malformed_json_and_oversized_body(api, authority_dir: Path) -> None:
    before = rows(authority_dir)
    r = api.post("/1.0/sign", data="{not json", content_type="application/json")
    assert r.status_code == 400 and r.get_json() == {"status": 400, "message": "error decoding json"}
    r = api.post("/1.0/sign", data="[1,2]", content_type="application/json")
    assert r.status_code == 400
    r = api.post("/1.0/sign", data=json.dumps({"csr": "x" * (70 * 1024), "ott": "y"}), content_type="application/json")
    assert r.status_code == 413 and r.get_json()["status"] == 413
    r = api.post("/1.0/sign", json={"ott": "y"})
    assert r.status_code == 400 and r.get_json()["message"] == "missing csr"
    csr, _ = make_csr("x.example.com")
    r = api.post("/1.0/sign", json={"csr": csr})
    assert r.status_code == 400 and r.get_json()["message"] == "missing ott"
    assert rows(authority_dir) == before


def test_weak_and_unsupported_keys_are_refused(api, authority_dir: Path) -> None:
    before = rows(authority_dir)
    cases = {
        "rsa1024": _weak_rsa_csr(1024),
        "rsa_e3": _weak_rsa_csr(2048, e=3),
        "p192": make_csr("weak.example.com", key=ec.generate_private_key(ec.SECP192R1()))[0],
    }
    for name, csr in cases.items():
        r = sign(api, csr, mint_sign_token(authority_dir, "weak.example.com"))
        assert 400 <= r.status_code < 500, (name, r.text)
        assert r.status_code in (400, 403)
        assert set(r.get_json()) == {"status", "message"}
    after = rows(authority_dir)
    assert after["certificates"] == after["endpoints"] == 0
    assert after == before


def test_sans_not_authorised_by_token(api, authority_dir: Path) -> None:
    before = rows(authority_dir)
    csr, _ = make_csr("app.example.com", ["app.example.com", "evil.example.com"])
    r = sign(api, csr, mint_sign_token(authority_dir, "app.example.com", ["app.example.com"]))
    assert r.status_code == 403
    csr, _ = make_csr("evil.example.com")
    r = sign(api, csr, mint_sign_token(authority_dir, "app.example.com", ["app.example.com"]))
    assert r.status_code == 403
    assert rows(authority_dir) == before



@pytest.mark.parametrize(
    ("csr_names", "status"),
    [
        (["a.example.com", "b.example.com"], 201),  # as the token lists them
        (["B.example.com", "a.example.com"], 201),  # another order and case: the same set
        (["a.example.com"], 403),  # a subset is not the token's set
        (["a.example.com", "b.example.com", "c.example.com"], 403),
    ],
)
def test_csr_names_must_be_the_tokens_set(api, authority_dir: Path, csr_names: list[str], status: int) -> None:
    csr, _ = make_csr("a.example.com", csr_names)
    r = sign(api, csr, mint_sign_token(authority_dir, "a.example.com", ["a.example.com", "b.example.com"]))
    assert r.status_code == status, r.text
    if status == 201:
        leaf = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["a.example.com", "b.example.com"]

def _tokens(authority_dir: Path) -> dict[str, str]:
    now = int(time.time())
    other = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())
    header = (
        base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": jwk["kid"], "typ": "JWT"}).encode())
        .rstrip(b"=")
        .decode()
    )
    payload = (
        base64.urlsafe_b64encode(json.dumps(sign_claims("t.example.com", ["t.example.com"])).encode())
        .rstrip(b"=")
        .decode()
    )
    public_pem = (
        jwt.PyJWK(jwk)
        .key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    import hmac

    signing_input = (
        base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": jwk["kid"], "typ": "JWT"}).encode())
        .rstrip(b"=")
        .decode()
        + "."
        + payload
    )
    mac = (
        base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), "sha256").digest()).rstrip(b"=").decode()
    )
    return {
        "expired": mint_token(authority_dir, sign_claims("t.example.com", ["t.example.com"], now=now - 1000)),
        "not_yet_valid": mint_token(authority_dir, sign_claims("t.example.com", ["t.example.com"], now=now + 1000)),
        "wrong_audience": mint_token(
            authority_dir,
            {**sign_claims("t.example.com", ["t.example.com"]), "aud": "https://other.example.com/1.0/sign"},
        ),
        "revoke_audience": mint_token(authority_dir, sign_claims("t.example.com", ["t.example.com"], op="revoke")),
        "other_key": mint_token(authority_dir, sign_claims("t.example.com", ["t.example.com"]), key=other),
        "alg_none": f"{header}.{payload}.",
        "hs256_with_public_key": f"{signing_input}.{mac}",
        "wrong_issuer": mint_token(authority_dir, {**sign_claims("t.example.com", ["t.example.com"]), "iss": "nobody"}),
        "too_long_lived": mint_token(
            authority_dir, {**sign_claims("t.example.com", ["t.example.com"]), "exp": now + 86400}
        ),
        "empty_subject": mint_token(authority_dir, sign_claims("", ["t.example.com"])),
        "garbage": "a.b.c",
    }


@pytest.mark.parametrize(
    "name",
    [
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "revoke_audience",
        "other_key",
        "alg_none",
        "hs256_with_public_key",
        "wrong_issuer",
        "too_long_lived",
        "empty_subject",
        "garbage",
    ],
)
def test_bad_tokens_are_401_and_write_nothing(api, authority_dir: Path, name: str) -> None:
    before = rows(authority_dir)
    csr, _ = make_csr("t.example.com")
    r = sign(api, csr, _tokens(authority_dir)[name])
    assert r.status_code == 401, (name, r.text)
    assert set(r.get_json()) == {"status", "message"} and r.get_json()["status"] == 401
    assert "Traceback" not in r.text
    assert rows(authority_dir) == before


def test_replayed_token_is_refused(api, authority_dir: Path) -> None:
    token = mint_sign_token(authority_dir, "r.example.com")
    csr, _ = make_csr("r.example.com")
    assert sign(api, csr, token).status_code == 201
    before = rows(authority_dir)
    r = sign(api, csr, token)
    assert r.status_code == 401 and r.get_json()["message"] == "token already used"
    assert rows(authority_dir) == before


def test_token_jti_kept_when_only_the_request_was_bad(api, authority_dir: Path) -> None:
    """A valid token whose request fails validation is not burnt: it can be retried."""
    token = mint_sign_token(authority_dir, "retry.example.com")
    bad_csr, _ = make_csr("other.example.com")
    assert sign(api, bad_csr, token).status_code == 403
    good_csr, _ = make_csr("retry.example.com")
    assert sign(api, good_csr, token).status_code == 201


def test_requested_validity_within_bounds(api, authority_dir: Path) -> None:
    csr, _ = make_csr("v.example.com")
    r = sign(api, csr, mint_sign_token(authority_dir, "v.example.com"), notAfter="1h")
    assert r.status_code == 201
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert abs(life.total_seconds() - 3660) <= 2
    for bad in ("48h", "1m", "-1h", "garbage"):
        r = sign(api, csr, mint_sign_token(authority_dir, "v.example.com"), notAfter=bad)
        assert r.status_code in (400, 403), (bad, r.text)


def test_cnf_binds_token_to_csr(api, authority_dir: Path) -> None:
    import hashlib

    csr, _ = make_csr("cnf.example.com")
    der = x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER)
    fp = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    other, _ = make_csr("cnf.example.com")
    assert sign(api, other, mint_sign_token(authority_dir, "cnf.example.com", cnf={"x5rt#S256": fp})).status_code == 403
    assert sign(api, csr, mint_sign_token(authority_dir, "cnf.example.com", cnf={"x5rt#S256": fp})).status_code == 201


def test_csr_without_common_name_gets_token_subject(api, authority_dir: Path) -> None:
    csr, _ = make_csr(None, ["nocn.example.com"])
    r = sign(api, csr, mint_sign_token(authority_dir, "nocn.example.com"))
    assert r.status_code == 201
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "nocn.example.com"


def test_concurrent_replay_across_instances_only_one_wins(authority_dir: Path) -> None:
    """Two independently built instances sharing one store: one token, exactly one certificate."""
    from concurrent.futures import ThreadPoolExecutor

    from werkzeug.test import Client

    from shared.api.app import CirrusApp
    from shared.config import Settings
    from shared.runtime import build_services

    instances = [build_services(Settings.load(authority_dir / "config.json")) for _ in range(2)]
    clients = [Client(CirrusApp(s)) for s in instances]
    csr, _ = make_csr("race.example.com")
    token = mint_sign_token(authority_dir, "race.example.com")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: sign(clients[i % 2], csr, token).status_code, range(8)))
    assert sorted(codes) == [201] + [401] * 7
    assert rows(authority_dir)["certificates"] == 1
    for s in instances:
        s.close()


def test_token_with_a_repeated_claim_is_refused(api, authority_dir: Path) -> None:
    """JSON with a member twice (which a lax parser resolves either way) is not a token (JOSE)."""
    from tests.helpers import provisioner_jwk

    jwk = provisioner_jwk(authority_dir)
    key = jwt.PyJWK(jwk).key
    claims = json.dumps(sign_claims("dup.example.com", ["dup.example.com"]), separators=(",", ":"))
    payload = claims[:-1] + ',"sub":"other.example.com"}'  # `sub` twice
    header = json.dumps({"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}, separators=(",", ":"))
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r_s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    token = f"{signing_input}.{b64(b''.join(v.to_bytes(32, 'big') for v in r_s))}"
    before = rows(authority_dir)
    csr, _ = make_csr("dup.example.com", ["dup.example.com"])
    r = sign(api, csr, token)
    assert r.status_code == 401, r.text
    assert rows(authority_dir) == before


@pytest.mark.parametrize("claim", ["jti", "sub"])
def test_token_with_an_unpaired_surrogate_is_refused(api, authority_dir: Path, claim: str) -> None:
    """`"\\ud800"` decodes to a string no UTF-8 encoder writes: a 401, not a 500 from the ledger (I-JSON)."""
    extra = {"jti": "\ud800x"} if claim == "jti" else {}
    claims = sign_claims("s.example.com", ["s.example.com"], **extra)
    if claim == "sub":
        claims["sub"] = "\udfffs.example.com"
    token = mint_token(authority_dir, claims)
    assert "\\ud" in base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()  # the escape is on the wire
    before = rows(authority_dir)
    csr, _ = make_csr("s.example.com")
    r = sign(api, csr, token)
    assert r.status_code == 401, r.text
    assert r.get_json() == {"status": 401, "message": "invalid token"}
    assert rows(authority_dir) == before
