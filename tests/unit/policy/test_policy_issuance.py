"""Policy on the issuance paths: step API /sign (403, step-ca's error JSON) and ACME finalize
(rejectedIdentifier), at authority and provisioner level; nothing is recorded on refusal."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from werkzeug.test import Client

from shared.acme.problems import from_ca_error
from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.errors import ConfigError
from shared.policy.names import PolicyViolation
from shared.runtime import Services, build_services
from tests.helpers import make_csr, mint_sign_token


def _configure(authority_dir: Path, *, authority: Any = None, jwk: Any = None, acme: Any = None) -> None:
    path = authority_dir / "config.json"
    cfg = json.loads(path.read_text())
    if authority is not None:
        cfg["authority"]["policy"] = authority
    for p in cfg["authority"]["provisioners"]:
        if p["type"] == "JWK" and jwk is not None:
            p["policy"] = jwk
        if p["type"] == "ACME" and acme is not None:
            p["policy"] = acme
    path.write_text(json.dumps(cfg))


@pytest.fixture
def make_services(authority_dir: Path) -> Iterator[Any]:
    made: list[Services] = []

    def build(**policies: Any) -> Services:
        _configure(authority_dir, **policies)
        s = build_services(Settings.load(authority_dir / "config.json"))
        made.append(s)
        return s

    yield build
    for s in made:
        s.close()


def _sign(services: Services, authority_dir: Path, cn: str, sans: list[str]) -> Any:
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    csr, _ = make_csr(cn, None)
    return api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, cn, sans)})


def _certificates(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0])
    finally:
        db.close()


AUTHORITY_POLICY = {"x509": {"allow": {"dns": ["*.example.com"]}, "deny": {"dns": ["bad.example.com"]}}}


def test_sign_inside_authority_policy_is_issued(make_services: Any, authority_dir: Path) -> None:
    services = make_services(authority=AUTHORITY_POLICY)
    r = _sign(services, authority_dir, "app.example.com", ["app.example.com"])
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("cn", "sans", "refused"),
    [
        ("bad.example.com", ["bad.example.com"], "bad.example.com"),
        ("app.example.org", ["app.example.org"], "app.example.org"),
        ("app.example.com", ["app.example.com", "10.0.0.1"], "10.0.0.1"),
        ("app.example.com", ["app.example.com", "a.b.example.com"], "a.b.example.com"),
    ],
)
def test_sign_outside_authority_policy_is_403(
    make_services: Any, authority_dir: Path, cn: str, sans: list[str], refused: str
) -> None:
    services = make_services(authority=AUTHORITY_POLICY)
    r = _sign(services, authority_dir, cn, sans)
    assert r.status_code == 403, r.text
    body = r.get_json()
    assert body["status"] == 403 and refused in body["message"]
    assert set(body) == {"status", "message"}
    assert _certificates(authority_dir) == 0


def test_provisioner_policy_applies_beside_the_authority_one(make_services: Any, authority_dir: Path) -> None:
    services = make_services(
        authority={"x509": {"allow": {"dns": ["*.example.com", "*.example.org"]}}},
        jwk={"x509": {"deny": {"dns": ["*.example.org"]}}},
    )
    assert _sign(services, authority_dir, "a.example.com", ["a.example.com"]).status_code == 201
    r = _sign(services, authority_dir, "a.example.org", ["a.example.org"])
    assert r.status_code == 403
    assert "excluded" in r.get_json()["message"]
    # the authority policy still refuses what the provisioner's allows
    assert _sign(services, authority_dir, "a.example.net", ["a.example.net"]).status_code == 403


def test_acme_finalize_names_outside_policy_are_rejected_identifiers(make_services: Any) -> None:
    services = make_services(acme={"x509": {"allow": {"dns": ["*.example.com"]}}})
    authority = services.issuing()
    acme = next(p for p in services.provisioners if p.ref.type == "ACME")
    from cryptography.hazmat.primitives import serialization

    csr_pem, _ = make_csr("www.example.net", ["www.example.net"])
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    with pytest.raises(PolicyViolation) as info:
        authority.issue_for_identifiers(provisioner_name=acme.ref.name, csr=csr, names=["www.example.net"])
    problem = from_ca_error(info.value)
    assert problem.to_json()["type"] == "urn:ietf:params:acme:error:rejectedIdentifier"
    ok_pem, _ = make_csr("www.example.com", ["www.example.com"])
    issued = authority.issue_for_identifiers(
        provisioner_name=acme.ref.name, csr=x509.load_pem_x509_csr(ok_pem.encode()), names=["www.example.com"]
    )
    assert issued.certificate.public_bytes(serialization.Encoding.DER) == issued.record.der


def test_unparsable_policy_fails_at_start(authority_dir: Path) -> None:
    _configure(authority_dir, authority={"x509": {"allow": {"ip": ["not-an-ip"]}}})
    with pytest.raises(ConfigError):
        build_services(Settings.load(authority_dir / "config.json"))
