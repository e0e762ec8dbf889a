"""The OIDC provisioner through POST /1.0/sign and /revoke, against the loopback OpenID provider."""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import Services, build_services
from tests.fakes.oidc_issuer import FakeIssuer, serve_fake_issuer
from tests.helpers import make_csr


@pytest.fixture
def issuer() -> Iterator[tuple[FakeIssuer, str]]:
    with serve_fake_issuer() as served:
        yield served


@pytest.fixture
def make_api(authority_dir: Path, issuer: tuple[FakeIssuer, str]) -> Iterator[Any]:
    made: list[Services] = []

    def build(**options: Any) -> Client:
        path = authority_dir / "config.json"
        cfg = json.loads(path.read_text())
        block = {"type": "OIDC", "name": "sso", "clientID": "cirrus-cli", "clientSecret": "public-secret",
                 "configurationEndpoint": issuer[1], "admins": ["root@example.com"], "domains": ["example.com"]}
        block.update(options)
        cfg["authority"]["provisioners"].append(block)
        path.write_text(json.dumps(cfg))
        s = build_services(Settings.load(path))
        made.append(s)
        return Client(CirrusApp(s, mounts=default_mounts(s)))

    yield build
    for s in made:
        s.close()


def certificates(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0])
    finally:
        db.close()


def sign(api: Client, token: str, cn: str = "1001", sans: list[str] | None = None) -> Any:
    csr, _ = make_csr(cn, sans)
    return api.post("/1.0/sign", json={"csr": csr, "ott": token})


def names(pem: str) -> tuple[str, list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return str(cn), san.get_values_for_type(x509.RFC822Name), san.get_values_for_type(x509.UniformResourceIdentifier)


@functools.cache
def _other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_id_token_gets_the_token_names(make_api: Any, issuer: Any) -> None:
    api = make_api()
    r = sign(api, issuer[0].mint(), "1001", ["evil.example.com"])  # a non-admin's CSR names are ignored
    assert r.status_code == 201, r.text
    assert names(r.get_json()["crt"]) == ("1001", ["alice@example.com"], [f"{issuer[1]}#1001"])


def test_admin_gets_the_csr_names(make_api: Any, issuer: Any) -> None:
    api = make_api()
    token = issuer[0].mint(email="root@EXAMPLE.com", sub="7")
    r = sign(api, token, "build.example.com", ["build.example.com"])
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert dns == ["build.example.com"]


def test_nonce_is_the_replay_key(make_api: Any, issuer: Any) -> None:
    api = make_api()
    assert sign(api, issuer[0].mint(nonce="n-1")).status_code == 201
    assert sign(api, issuer[0].mint(nonce="n-1", iat=int(time.time()) - 5)).status_code == 401


def _bad(issuer: FakeIssuer, case: str) -> str:
    now = int(time.time())
    return {
        "another client": lambda: issuer.mint(aud="someone-else", azp="someone-else"),
        "azp for another client": lambda: issuer.mint(aud="cirrus-cli", azp="someone-else"),
        "unverified email": lambda: issuer.mint(email_verified=False),
        "email outside domains": lambda: issuer.mint(email="mallory@evil.example"),
        "wrong issuer": lambda: issuer.mint(iss="https://accounts.example.org"),
        "expired": lambda: issuer.mint(iat=now - 7200, exp=now - 3600),
        "re-signed": lambda: issuer.mint(key=_other_key()),
        "unknown kid": lambda: issuer.mint(key=_other_key(), kid="other"),
        "not in groups": lambda: issuer.mint(groups=["sales"]),
    }[case]()


@pytest.mark.parametrize(
    "case",
    ["another client", "azp for another client", "unverified email", "email outside domains", "wrong issuer",
     "expired", "re-signed", "unknown kid", "not in groups"],
)
def test_bad_id_tokens_are_refused(make_api: Any, issuer: Any, authority_dir: Path, case: str) -> None:
    api = make_api(groups=["engineers"])
    r = sign(api, _bad(issuer[0], case))
    assert r.status_code == 401, (case, r.text)
    assert set(r.get_json()) == {"status", "message"}
    assert certificates(authority_dir) == 0


def test_unknown_kid_refreshes_the_key_set_at_most_once_a_minute(make_api: Any, issuer: Any) -> None:
    api = make_api()
    assert sign(api, issuer[0].mint()).status_code == 201
    before = issuer[0].jwks_requests
    for _ in range(5):
        assert sign(api, issuer[0].mint(key=_other_key(), kid=f"k{_}")).status_code == 401
    assert issuer[0].jwks_requests == before


def test_only_admins_revoke(make_api: Any, issuer: Any) -> None:
    api = make_api()
    r = sign(api, issuer[0].mint())
    serial = str(x509.load_pem_x509_certificate(r.get_json()["crt"].encode()).serial_number)
    body = {"serial": serial, "reasonCode": 0, "passive": True}
    r = api.post("/1.0/revoke", json={**body, "ott": issuer[0].mint(sub=serial)})
    assert r.status_code == 401, r.text
    r = api.post("/1.0/revoke", json={**body, "ott": issuer[0].mint(sub=serial, email="root@example.com")})
    assert r.status_code == 200, r.text


def test_provisioners_lists_oidc_with_its_client_secret(make_api: Any) -> None:
    listed = make_api().get("/1.0/provisioners").get_json()["provisioners"]
    oidc = [p for p in listed if p["type"] == "OIDC"]
    assert oidc and oidc[0]["clientID"] == "cirrus-cli" and oidc[0]["clientSecret"] == "public-secret"
