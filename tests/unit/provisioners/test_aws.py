"""The AWS provisioner through POST /1.0/sign, with documents from the fake IMDSv2.

Tokens are built as `step ca token` builds them on EC2: HS256 keyed with the raw
document signature, `iss` ec2.amazonaws.com, `aud` `https://<ca>/1.0/sign#aws/<name>`,
`amazon.document`/`amazon.signature` in std base64, `jti` SHA-256("aws/<name>.<instanceId>").
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.cloud_identity import aws_token
from shared.config import Settings
from shared.errors import ConfigError
from shared.provisioners.aws import load_iid_certificates
from shared.runtime import Services, build_services
from tests.fakes.aws_imds import EC2Instance, FakeIMDS
from tests.helpers import AUDIENCE_HOST, make_csr, mint_token, sign_claims

AUD = f"https://{AUDIENCE_HOST}/1.0/sign#aws/amazon"
DNS = "ip-172-31-10-20.us-west-2.compute.internal"


@functools.cache
def _imds() -> FakeIMDS:
    return FakeIMDS()


@functools.cache
def _attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def make_api(authority_dir: Path, tmp_path: Path) -> Iterator[Any]:
    made: list[Services] = []
    roots = tmp_path / "iid-roots.pem"
    roots.write_bytes(_imds().roots_pem)

    def build(**options: Any) -> Client:
        path = authority_dir / "config.json"
        cfg = json.loads(path.read_text())
        block = {"type": "AWS", "name": "amazon", "accounts": ["123456789012"], "iidRoots": str(roots)}
        block.update(options)
        cfg["authority"]["provisioners"].append(block)
        path.write_text(json.dumps(cfg))
        s = build_services(Settings.load(path))
        made.append(s)
        return Client(CirrusApp(s, mounts=default_mounts(s)))

    yield build
    for s in made:
        s.close()


def step_token(instance: EC2Instance | None = None, *, subject: str = DNS, audience: str = AUD, **tamper: Any) -> str:
    imds = _imds()
    document = (instance or imds.instance).document()
    signature = imds.sign(document)
    if not tamper:
        return aws_token(document, signature, subject=subject, audience=audience, provisioner="amazon")
    claims = jwt.decode(
        aws_token(document, signature, subject=subject, audience=audience, provisioner="amazon"),
        options={"verify_signature": False},
    )
    key = tamper.pop("hmac_key", signature)
    alg = tamper.pop("alg", "HS256")
    claims.update(tamper)
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": "JWT"})


def certificates(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0])
    finally:
        db.close()


def sign(api: Client, token: str, cn: str | None = DNS, sans: list[str] | None = [DNS]) -> Any:  # noqa: B006
    csr, _ = make_csr(cn, sans)
    return api.post("/1.0/sign", json={"csr": csr, "ott": token})


def test_token_shape_is_steps() -> None:
    token = step_token()
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "ec2.amazonaws.com" and claims["aud"] == AUD and claims["exp"] - claims["iat"] == 300
    assert claims["jti"] == hashlib.sha256(b"aws/amazon.i-0a1b2c3d4e5f67890").hexdigest()
    assert json.loads(base64.b64decode(claims["amazon"]["document"]))["instanceId"] == "i-0a1b2c3d4e5f67890"


def test_identity_document_gets_a_certificate(make_api: Any, authority_dir: Path) -> None:
    api = make_api()
    r = sign(api, step_token(), DNS, [DNS, "app.example.com"])
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DNS, "app.example.com"]
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.37476.9000.64.1"))
    assert b"123456789012" in ext.value.value  # credential id: the account


def test_disable_custom_sans_forces_dns_and_private_ip(make_api: Any) -> None:
    api = make_api(disableCustomSANs=True)
    r = sign(api, step_token(), DNS, None)
    assert r.status_code == 201, r.text
    san = x509.load_pem_x509_certificate(r.get_json()["crt"].encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    assert san.get_values_for_type(x509.DNSName) == [DNS]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["172.31.10.20"]


def test_common_name_must_be_the_subject(make_api: Any, authority_dir: Path) -> None:
    r = sign(make_api(), step_token(), "other.example.com", ["other.example.com"])
    assert r.status_code == 403 and certificates(authority_dir) == 0


def test_disable_custom_sans_refuses_other_names(make_api: Any, authority_dir: Path) -> None:
    api = make_api(disableCustomSANs=True)
    assert sign(api, step_token(), DNS, [DNS, "evil.example.com"]).status_code == 403
    assert sign(api, step_token(subject="evil.example.com"), "evil.example.com", None).status_code == 401
    assert certificates(authority_dir) == 0


def test_trust_on_first_use(make_api: Any, authority_dir: Path) -> None:
    api = make_api()
    assert sign(api, step_token()).status_code == 201
    time.sleep(1.05)
    r = sign(api, step_token())
    assert r.status_code == 401 and r.get_json() == {"status": 401, "message": "token already used"}
    assert certificates(authority_dir) == 1


def test_without_trust_on_first_use(make_api: Any, authority_dir: Path) -> None:
    api = make_api(disableTrustOnFirstUse=True)
    token = step_token()
    assert sign(api, token).status_code == 201
    assert sign(api, token).status_code == 401
    time.sleep(1.05)
    assert sign(api, step_token()).status_code == 201


def _bad(case: str) -> str:
    imds = _imds()
    now = int(time.time())
    doc = imds.instance.document()
    if case == "forged document":  # the document changed, the signature kept
        forged = doc.replace(b"123456789012", b"999999999999")
        sig = imds.sign(doc)
        return aws_token(forged, sig, subject=DNS, audience=AUD, provisioner="amazon")
    if case == "re-signed document":  # signed with a key that is not AWS's
        forged = doc.replace(b"172.31.10.20", b"172.31.99.99")
        sig = imds.sign(forged, key=_attacker_key())
        return aws_token(forged, sig, subject=DNS, audience=AUD, provisioner="amazon")
    if case == "hmac with another key":
        return step_token(hmac_key=b"k" * 64)
    if case == "wrong account":
        other = EC2Instance(account_id="999999999999")
        return step_token(other)
    if case == "instance too old":
        return step_token(EC2Instance(pending=imds.instance.pending.replace(year=2020)))
    return {
        "wrong issuer": lambda: step_token(iss="ec2.example.com"),
        "wrong audience": lambda: step_token(audience="https://ca.example.org/1.0/sign#aws/amazon"),
        "audience for gcp": lambda: step_token(audience=f"https://{AUDIENCE_HOST}/1.0/sign#gcp/amazon"),
        "expired": lambda: step_token(iat=now - 900, nbf=now - 900, exp=now - 600),
    }[case]()


@pytest.mark.parametrize(
    "case",
    [
        "forged document",
        "re-signed document",
        "hmac with another key",
        "wrong account",
        "instance too old",
        "wrong issuer",
        "wrong audience",
        "audience for gcp",
        "expired",
    ],
)
def test_bad_identity_documents_are_refused(make_api: Any, authority_dir: Path, case: str) -> None:
    api = make_api(instanceAge="1h")
    r = sign(api, _bad(case))
    assert r.status_code == 401, (case, r.text)
    assert set(r.get_json()) == {"status", "message"}
    assert certificates(authority_dir) == 0


def test_hs256_is_accepted_nowhere_else(make_api: Any, authority_dir: Path) -> None:
    """A JWK-provisioner token MACed with HS256 (say, with the public key's bytes) is refused."""
    api = make_api()
    jwk = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())
    public = {k: v for k, v in jwk.items() if k != "d"}
    good = mint_token(authority_dir, sign_claims("a.example.com", ["a.example.com"]))
    header = {"alg": "HS256", "kid": jwk["kid"], "typ": "JWT"}

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = b64(json.dumps(header).encode()) + "." + good.split(".")[1]
    mac = hmac.new(json.dumps(public).encode(), signing_input.encode(), hashlib.sha256).digest()
    r = sign(api, f"{signing_input}.{b64(mac)}", "a.example.com", ["a.example.com"])
    assert r.status_code == 401, r.text
    assert sign(api, good, "a.example.com", ["a.example.com"]).status_code == 201  # the same claims, ES256


def test_other_algorithms_are_refused_on_the_aws_path(make_api: Any) -> None:
    token = step_token(alg="RS256", hmac_key=_attacker_key())
    assert sign(make_api(), token).status_code == 401


def test_built_in_certificates_load_and_bad_imds_versions_fail_at_start(make_api: Any) -> None:
    assert len(load_iid_certificates(None)) == 5
    with pytest.raises(ConfigError):
        make_api(imdsVersions=["v3"])


def test_provisioners_lists_aws(make_api: Any) -> None:
    listed = make_api(imdsVersions=["v2"]).get("/1.0/provisioners").get_json()["provisioners"]
    aws = [p for p in listed if p["type"] == "AWS"]
    assert aws and aws[0]["accounts"] == ["123456789012"] and aws[0]["imdsVersions"] == ["v2"]
