"""The X5C provisioner through POST /1.0/sign, with a test PKI built here.

Tokens as `step ca token --x5c-cert leaf.crt --x5c-key leaf.key` builds them: the `x5c` header is the
chain (leaf first) in std base64 DER, the JWT signed by the leaf key, `aud` `.../1.0/sign#x5c/<name>`.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import Services, build_services
from tests.helpers import AUDIENCE_HOST, make_csr

AUD = f"https://{AUDIENCE_HOST}/1.0/sign#x5c/devices"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool, eku: bool = True,
          digital_signature: bool = True, days: float = 30) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(digital_signature=digital_signature or ca, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=not digital_signature and not ca, key_cert_sign=ca,
                          crl_sign=ca, encipher_only=False, decipher_only=False),
            critical=True,
        )
    )
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(f"{subject}.devices.example.com")]),
                            critical=False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@functools.cache
def pki() -> dict[str, Any]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Devices Root", root_key, "Devices Root", root_key, ca=True, days=3650)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    other_root_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "root": root,
        "leaf_key": leaf_key,
        "leaf": _cert("device-1", leaf_key, "Devices Root", root_key, ca=False, days=2),
        "short": _cert("device-1", leaf_key, "Devices Root", root_key, ca=False, days=2 / 24),
        "no_eku": _cert("device-1", leaf_key, "Devices Root", root_key, ca=False, eku=False),
        "no_sign": _cert("device-1", leaf_key, "Devices Root", root_key, ca=False, digital_signature=False),
        "stranger": _cert("device-1", leaf_key, "Other Root", other_root_key, ca=False),
    }


def token(leaf: x509.Certificate | None = None, *, key: Any = None, **overrides: Any) -> str:
    p = pki()
    leaf = leaf or p["leaf"]
    now = int(time.time())
    claims: dict[str, Any] = {"iss": "devices", "sub": "device-1.devices.example.com", "aud": AUD, "nbf": now,
                              "iat": now, "exp": now + 300, "jti": secrets.token_hex(32),
                              "sans": ["device-1.devices.example.com"]}
    claims.update(overrides)
    x5c = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
    return jwt.encode(claims, key or p["leaf_key"], algorithm="ES256", headers={"typ": "JWT", "x5c": x5c})


@pytest.fixture
def api(authority_dir: Path) -> Iterator[Client]:
    path = authority_dir / "config.json"
    cfg = json.loads(path.read_text())
    root_pem = pki()["root"].public_bytes(serialization.Encoding.PEM)
    cfg["authority"]["provisioners"].append(
        {"type": "X5C", "name": "devices", "roots": base64.b64encode(root_pem).decode()}
    )
    path.write_text(json.dumps(cfg))
    s: Services = build_services(Settings.load(path))
    yield Client(CirrusApp(s, mounts=default_mounts(s)))
    s.close()


def certificates(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0])
    finally:
        db.close()


def sign(api: Client, ott: str, **extra: Any) -> Any:
    csr, _ = make_csr("device-1.devices.example.com", ["device-1.devices.example.com"])
    return api.post("/1.0/sign", json={"csr": csr, "ott": ott, **extra})


def test_x5c_token_gets_a_certificate_inside_the_leafs_validity(api: Client) -> None:
    r = sign(api, token())
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(hours=24, minutes=1)
    r = sign(api, token(pki()["short"]))  # the leaf ends in two hours: the default end is clipped to it
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert cert.not_valid_after_utc <= pki()["short"].not_valid_after_utc


def test_explicit_not_after_beyond_the_leaf_is_refused(api: Client, authority_dir: Path) -> None:
    r = sign(api, token(pki()["short"]), notAfter="20h")
    assert r.status_code == 403, r.text
    assert certificates(authority_dir) == 0


@pytest.mark.parametrize(
    "case", ["chain to another root", "leaf without clientAuth", "leaf that may not sign", "signed by another key",
             "wrong issuer", "audience for another provisioner", "no x5c header", "replayed jti"],
)
def test_bad_x5c_tokens_are_refused(api: Client, authority_dir: Path, case: str) -> None:
    p = pki()
    if case == "replayed jti":
        assert sign(api, token(jti="same")).status_code == 201
        r = sign(api, token(jti="same"))
        assert r.status_code == 401
        return
    ott = {
        "chain to another root": lambda: token(p["stranger"]),
        "leaf without clientAuth": lambda: token(p["no_eku"]),
        "leaf that may not sign": lambda: token(p["no_sign"]),
        "signed by another key": lambda: token(key=ec.generate_private_key(ec.SECP256R1())),
        "wrong issuer": lambda: token(iss="other"),
        "audience for another provisioner": lambda: token(aud=f"https://{AUDIENCE_HOST}/1.0/sign#x5c/other"),
        "no x5c header": lambda: jwt.encode({"iss": "devices", "sub": "x", "aud": AUD, "exp": int(time.time()) + 60},
                                            p["leaf_key"], algorithm="ES256"),
    }[case]()
    r = sign(api, ott)
    assert r.status_code == 401, (case, r.text)
    assert set(r.get_json()) == {"status", "message"}
    assert certificates(authority_dir) == 0
