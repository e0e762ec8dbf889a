"""The GCP provisioner through POST /1.0/sign, against the fake metadata and key server.

Tokens are fetched exactly as `step ca token --provisioner gcp` fetches them (the
identity URL with audience `https://<ca>/1.0/sign#gcp/<name>`, `format=full`,
`licenses=FALSE`, header `Metadata-Flavor: Google`). Every refusal of the issue's
bad-input list that applies to GCP gets a 4xx in step-ca's error JSON and no
certificate; an outage of Google's key server is a 503.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import Services, build_services
from tests.fakes.gcp_metadata import IDENTITY_PATH, FakeGoogle, serve_fake_google
from tests.helpers import AUDIENCE_HOST, make_csr

AUD = f"https://{AUDIENCE_HOST}/1.0/sign#gcp/google"


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogle, str]]:
    with serve_fake_google() as served:
        yield served


def _configure(authority_dir: Path, base_url: str, **options: Any) -> None:
    path = authority_dir / "config.json"
    cfg = json.loads(path.read_text())
    block = {
        "type": "GCP",
        "name": "google",
        "serviceAccounts": ["vm@cirrus-test.iam.gserviceaccount.com"],
        "projectIDs": ["cirrus-test"],
        "cirrus": {"jwksURL": f"{base_url}/oauth2/v3/certs"},
    }
    block.update(options)
    cfg["authority"]["provisioners"].append(block)
    path.write_text(json.dumps(cfg))


@pytest.fixture
def make_api(authority_dir: Path, google: tuple[FakeGoogle, str]) -> Iterator[Any]:
    made: list[Services] = []

    def build(**options: Any) -> Client:
        _configure(authority_dir, google[1], **options)
        s = build_services(Settings.load(authority_dir / "config.json"))
        made.append(s)
        return Client(CirrusApp(s, mounts=default_mounts(s)))

    yield build
    for s in made:
        s.close()


def metadata_token(base_url: str, audience: str = AUD) -> str:
    """What `step ca token` does on a GCE VM."""
    query = urllib.parse.urlencode({"audience": audience, "format": "full", "licenses": "FALSE"})
    req = urllib.request.Request(f"{base_url}{IDENTITY_PATH}?{query}", headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode().strip()


def certificates(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0])
    finally:
        db.close()


def sign(api: Client, token: str, cn: str | None = "web-1", sans: list[str] | None = ["web-1.example.com"]) -> Any:  # noqa: B006
    """As `step ca certificate web-1 --san web-1.example.com` would ask."""
    csr, _ = make_csr(cn, sans)
    return api.post("/1.0/sign", json={"csr": csr, "ott": token})


def san_dns(pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_metadata_server_needs_the_flavor_header(google: tuple[FakeGoogle, str]) -> None:
    req = urllib.request.Request(f"{google[1]}{IDENTITY_PATH}?audience=x")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 403


def test_identity_token_gets_a_certificate_with_the_csr_names(make_api: Any, google: Any, authority_dir: Path) -> None:
    api = make_api()
    r = sign(api, metadata_token(google[1]), "web-1", ["web-1.example.com"])
    assert r.status_code == 201, r.text
    assert san_dns(r.get_json()["crt"]) == ["web-1.example.com"]
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier("1.3.6.1.4.1.37476.9000.64.1"))
    assert b"google" in ext.value.value and b"1122334455667788990" in ext.value.value  # type GCP, name, sub
    assert google[0].identity_requests[0]["format"] == ["full"]


def test_disable_custom_sans_forces_the_internal_names(make_api: Any, google: Any) -> None:
    api = make_api(disableCustomSANs=True)
    r = sign(api, metadata_token(google[1]), "web-1", None)
    assert r.status_code == 201, r.text
    assert san_dns(r.get_json()["crt"]) == ["web-1.c.cirrus-test.internal", "web-1.us-central1-a.c.cirrus-test.internal"]


@pytest.mark.parametrize(
    ("cn", "sans"),
    [("web-1", ["evil.example.com"]), ("other-vm", None), ("web-1", ["web-1.c.cirrus-test.internal", "x.example.com"])],
)
def test_disable_custom_sans_refuses_other_names(make_api: Any, google: Any, authority_dir: Path, cn: str, sans: Any) -> None:
    api = make_api(disableCustomSANs=True)
    r = sign(api, metadata_token(google[1]), cn, sans)
    assert r.status_code == 403, r.text
    assert set(r.get_json()) == {"status", "message"}
    assert certificates(authority_dir) == 0


def test_trust_on_first_use_one_certificate_per_instance(make_api: Any, google: Any, authority_dir: Path) -> None:
    api = make_api()
    assert sign(api, metadata_token(google[1])).status_code == 201
    r = sign(api, metadata_token(google[1]))  # a fresh token from the same instance
    assert r.status_code == 401, r.text
    assert r.get_json() == {"status": 401, "message": "token already used"}
    assert certificates(authority_dir) == 1


def test_without_trust_on_first_use_each_token_once(make_api: Any, google: Any, authority_dir: Path) -> None:
    api = make_api(disableTrustOnFirstUse=True)
    token = metadata_token(google[1])
    assert sign(api, token).status_code == 201
    assert sign(api, token).status_code == 401  # the same token is still single-use
    time.sleep(1.1)  # a new iat: a different token
    assert sign(api, metadata_token(google[1])).status_code == 201
    assert certificates(authority_dir) == 2


@functools.cache
def _other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _bad_tokens(google: FakeGoogle) -> dict[str, str]:
    other_key = _other_key()
    now = int(time.time())
    engine = google.identity_claims(AUD)["google"]["compute_engine"]
    return {
        "wrong issuer": google.identity_token(AUD, iss="https://accounts.example.com"),
        "wrong audience host": google.identity_token("https://ca.example.org/1.0/sign#gcp/google"),
        "audience without fragment": google.identity_token(f"https://{AUDIENCE_HOST}/1.0/sign"),
        "audience for another provisioner": google.identity_token(f"https://{AUDIENCE_HOST}/1.0/sign#gcp/other"),
        "wrong service account": google.identity_token(AUD, sub="999", email="other@x.iam.gserviceaccount.com"),
        "wrong project": google.identity_token(AUD, google={"compute_engine": {**engine, "project_id": "other"}}),
        "expired": google.identity_token(AUD, iat=now - 7200, exp=now - 3600),
        "re-signed with another key": google.identity_token(AUD, key=other_key),
        "unknown kid": google.identity_token(AUD, key=other_key, kid="not-google"),
        "no instance id": google.identity_token(AUD, google={"compute_engine": {**engine, "instance_id": ""}}),
        "format=standard": google.identity_token(AUD, google=None),
        "instance too old": google.identity_token(
            AUD, google={"compute_engine": {**engine, "instance_creation_timestamp": now - 7200}}
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong issuer",
        "wrong audience host",
        "audience without fragment",
        "audience for another provisioner",
        "wrong service account",
        "wrong project",
        "expired",
        "re-signed with another key",
        "unknown kid",
        "no instance id",
        "format=standard",
        "instance too old",
    ],
)
def test_bad_identity_tokens_are_refused(make_api: Any, google: Any, authority_dir: Path, case: str) -> None:
    api = make_api(instanceAge="1h")
    r = sign(api, _bad_tokens(google[0])[case])
    assert r.status_code == 401, (case, r.text)
    body = r.get_json()
    assert set(body) == {"status", "message"} and body["status"] == 401
    assert certificates(authority_dir) == 0


def test_key_server_outage_is_503(make_api: Any, google: Any, authority_dir: Path) -> None:
    api = make_api()
    google[0].jwks_down = True
    r = sign(api, metadata_token(google[1]))
    assert r.status_code == 503, r.text
    assert r.get_json()["status"] == 503
    google[0].jwks_down = False
    assert sign(api, metadata_token(google[1])).status_code == 201  # recovers; the TOFU key was not spent
    assert certificates(authority_dir) == 1


def test_provisioners_lists_gcp_as_step_ca(make_api: Any) -> None:
    api = make_api(disableCustomSANs=True)
    listed = api.get("/1.0/provisioners").get_json()["provisioners"]
    gcp = [p for p in listed if p["type"] == "GCP"]
    assert len(gcp) == 1 and gcp[0]["name"] == "google"
    assert gcp[0]["serviceAccounts"] == ["vm@cirrus-test.iam.gserviceaccount.com"]
    assert gcp[0]["projectIDs"] == ["cirrus-test"] and gcp[0]["disableCustomSANs"] is True


def test_policy_applies_to_gcp_certificates(make_api: Any, google: Any) -> None:
    api = make_api(policy={"x509": {"allow": {"dns": ["*.example.com"]}}})
    assert sign(api, metadata_token(google[1]), "web-1", ["web-1.example.org"]).status_code == 403
