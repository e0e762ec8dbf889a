"""`/ssh/sign` with OIDC ID tokens and GCP/AWS/Azure instance identities (issue 14 item 4).

As step-ca's `AuthorizeSSHSign`: OIDC gives user certificates named for the e-mail (admins choose
freely), the cloud identities give host certificates named for the instance, and trust on first
use is the same single claim as for X.509. Every refusal is a 4xx in step-ca's error JSON with no
certificate recorded.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.provisioners.ssh_sign import oidc_principals, sanitize_ssh_user_principal
from shared.runtime import Services, build_services
from shared.ssh.certificate import SSHCertificate, parse_certificate
from tests.fakes.aws_imds import FakeIMDS
from tests.fakes.azure_imds import FakeAzure, serve_fake_azure
from tests.fakes.gcp_metadata import IDENTITY_PATH, FakeGoogle, serve_fake_google
from tests.fakes.oidc_issuer import FakeIssuer, serve_fake_issuer
from tests.helpers import AUDIENCE_HOST
from tests.sshhelpers import cert_line, keygen
from tests.unit.ssh.test_ssh_api import refused, ssh_rows

Build = Callable[[dict[str, Any]], Client]
GCP_AUD = f"https://{AUDIENCE_HOST}/1.0/ssh/sign#gcp/google"
AWS_AUD = f"https://{AUDIENCE_HOST}/1.0/ssh/sign#aws/amazon"
GCP_NAMES = ("web-1.c.cirrus-test.internal", "web-1.us-central1-a.c.cirrus-test.internal")
AWS_NAMES = ("172.31.10.20", "ip-172-31-10-20.us-west-2.compute.internal")


@pytest.fixture
def build(authority_dir: Path) -> Iterator[Build]:
    made: list[Services] = []

    def make(block: dict[str, Any]) -> Client:
        path = authority_dir / "config.json"
        cfg = json.loads(path.read_text())
        cfg["authority"]["provisioners"].append(block)
        path.write_text(json.dumps(cfg))
        s = build_services(Settings.load(path))
        made.append(s)
        return Client(CirrusApp(s, mounts=default_mounts(s)))

    yield make
    for s in made:
        s.close()


@pytest.fixture
def pub(tmp_path: Path) -> str:
    return keygen(tmp_path, "id_ecdsa", "-t", "ecdsa")[1]


def issued(r: Any) -> SSHCertificate:
    assert r.status_code == 201, r.text
    return parse_certificate(base64.b64decode(r.get_json()["crt"]))


# ------------------------------------------------------------------ OIDC
@pytest.fixture
def oidc(build: Build) -> Iterator[tuple[Client, FakeIssuer]]:
    with serve_fake_issuer() as (issuer, url):
        block = {"type": "OIDC", "name": "sso", "clientID": "cirrus-cli", "clientSecret": "public-secret",
                 "configurationEndpoint": url, "admins": ["root@example.com"], "domains": ["example.com"]}
        yield build(block), issuer


def test_principals_from_an_email_as_step_ca_sanitises_them() -> None:
    assert sanitize_ssh_user_principal("Jane.Doe+ops@Example.com") == "janedoe_ops"
    assert oidc_principals("Jane.Doe+ops@Example.com") == ("janedoe_ops", "Jane.Doe+ops", "Jane.Doe+ops@Example.com")
    assert oidc_principals("alice@example.com") == ("alice", "alice@example.com")


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["example.com", "Example.COM", "a@b.example"]))
def test_email_principals_are_user_names_or_refused(local: str, domain: str) -> None:
    """Whatever the local part, the first principal is a valid user name (or the e-mail is refused),
    the e-mail itself is last, and no principal repeats."""
    from shared.errors import Unauthorized

    email = f"{local}@{domain}"
    try:
        names = oidc_principals(email)
    except Unauthorized:
        assert not re.fullmatch(r"[a-z][-a-z0-9_]*", sanitize_ssh_user_principal(email), re.ASCII)
        return
    assert re.fullmatch(r"[a-z][-a-z0-9_]*", names[0], re.ASCII) and "." not in names[0]
    assert names[-1] == email and len(set(names)) == len(names)
    assert set(names) <= {names[0], email.rpartition("@")[0], email}


def test_oidc_user_certificate_is_named_for_the_email(oidc, pub: str) -> None:
    api, issuer = oidc
    cert = issued(api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": issuer.mint()}))
    assert cert.type_name == "user" and cert.key_id == "alice@example.com"
    assert cert.principals == ("alice", "alice@example.com")
    assert "permit-pty" in cert.extensions
    # The provisioner's user claims: 16h default plus the minute of backdate.
    assert cert.valid_before - cert.valid_after == 16 * 3600 + 60


def test_oidc_request_may_narrow_principals_and_validity(oidc, pub: str) -> None:
    api, issuer = oidc
    body = {"publicKey": pub, "ott": issuer.mint(), "certType": "user", "principals": ["alice"], "validBefore": "1h"}
    cert = issued(api.post("/ssh/sign", json=body))
    assert cert.principals == ("alice", "alice@example.com")  # step-ca's default template: all of the identity's
    assert cert.valid_before - cert.valid_after == 3600 + 60


def test_oidc_admin_chooses_type_key_id_and_principals(oidc, pub: str) -> None:
    api, issuer = oidc
    token = issuer.mint(email="root@example.com", sub="42")
    body = {"publicKey": pub, "ott": token, "certType": "host", "keyID": "bastion", "principals": ["bastion.example.com"]}
    cert = issued(api.post("/ssh/sign", json=body))
    assert (cert.type_name, cert.key_id, cert.principals) == ("host", "bastion", ("bastion.example.com",))
    assert not cert.extensions
    assert cert.valid_before - cert.valid_after == 720 * 3600 + 60


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"certType": "host"}, 403, "type does not match"),
        ({"principals": ["root"]}, 403, "principals does not match"),
        ({"principals": ["alice", "bob"]}, 403, "principals does not match"),
        ({"validBefore": "25h"}, 403, "greater than maximum"),
    ],
)
def test_oidc_non_admin_refusals(oidc, pub: str, authority_dir: Path, body, status: int, message: str) -> None:
    api, issuer = oidc
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": issuer.mint(), **body})
    refused(r, status)
    assert message in r.get_json()["message"]
    assert ssh_rows(authority_dir) == 0


@pytest.mark.parametrize("missing", ["certType", "keyID", "principals"])
def test_oidc_admin_must_name_every_field(oidc, pub: str, authority_dir: Path, missing: str) -> None:
    api, issuer = oidc
    body = {"certType": "user", "keyID": "root", "principals": ["root"]}
    del body[missing]
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": issuer.mint(email="root@example.com"), **body}), 400)
    assert ssh_rows(authority_dir) == 0


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"email": None}, "email not found"),  # nothing to name the certificate for
        ({"email": "9lives@example.com"}, "invalid principal '9lives'"),  # a local part that is no user name
        ({"exp": 1_000_000_000, "iat": 999_999_000}, "token is expired"),
        ({"aud": "someone-else", "azp": None}, "provisioner not found or invalid audience"),
    ],
)
def test_oidc_bad_tokens_are_refused(oidc, pub: str, authority_dir: Path, claims, message: str) -> None:
    api, issuer = oidc
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": issuer.mint(**claims)})
    refused(r, 401)
    assert message in r.get_json()["message"]
    assert ssh_rows(authority_dir) == 0


def test_oidc_nonce_is_single_use_for_ssh(oidc, pub: str) -> None:
    api, issuer = oidc
    token = issuer.mint()
    issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": token}))
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": token}), 401)


def test_oidc_ssh_disabled_by_the_provisioner_claims(build: Build, pub: str) -> None:
    with serve_fake_issuer() as (issuer, url):
        api = build({"type": "OIDC", "name": "sso", "clientID": "cirrus-cli", "configurationEndpoint": url,
                     "claims": {"enableSSHCA": False}})
        r = api.post("/ssh/sign", json={"publicKey": pub, "ott": issuer.mint()})
        refused(r, 401)
        assert "sshCA is disabled" in r.get_json()["message"]


# ------------------------------------------------------------------- GCP
@pytest.fixture
def google() -> Iterator[tuple[FakeGoogle, str]]:
    with serve_fake_google() as served:
        yield served


def gcp_block(base_url: str, **options: Any) -> dict[str, Any]:
    return {"type": "GCP", "name": "google", "serviceAccounts": ["vm@cirrus-test.iam.gserviceaccount.com"],
            "projectIDs": ["cirrus-test"], "cirrus": {"jwksURL": f"{base_url}/oauth2/v3/certs"}, **options}


def metadata_token(base_url: str, audience: str = GCP_AUD) -> str:
    """What `step ssh certificate --host` fetches on a GCE VM."""
    query = urllib.parse.urlencode({"audience": audience, "format": "full", "licenses": "FALSE"})
    req = urllib.request.Request(f"{base_url}{IDENTITY_PATH}?{query}", headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode().strip()


def test_gcp_host_certificate_as_ssh_keygen_shows_it(build: Build, google, tmp_path: Path) -> None:
    api = build(gcp_block(google[1], disableCustomSANs=True))
    _, pub = keygen(tmp_path, "ssh_host_ecdsa_key", "-t", "ecdsa")
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": metadata_token(google[1]), "certType": "host"})
    cert = issued(r)
    path = tmp_path / "ssh_host_ecdsa_key-cert.pub"
    path.write_text(cert_line(r.get_json()["crt"]))
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert "ecdsa-sha2-nistp256-cert-v01@openssh.com host certificate" in shown
    assert 'Key ID: "web-1"' in shown
    assert f"\n                {GCP_NAMES[0]}\n                {GCP_NAMES[1]}\n" in shown
    assert "Extensions: (none)" in shown
    assert cert.valid_before - cert.valid_after == 720 * 3600 + 60
    roots = api.get("/ssh/roots").get_json()
    assert cert.signature_key == base64.b64decode(roots["hostKey"][0])


def test_gcp_custom_principals_when_allowed(build: Build, google, pub: str) -> None:
    api = build(gcp_block(google[1]))
    body = {"publicKey": pub, "ott": metadata_token(google[1]), "principals": ["web.example.com"]}
    cert = issued(api.post("/ssh/sign", json=body))
    assert (cert.type_name, cert.key_id, cert.principals) == ("host", "web-1", ("web.example.com",))


def test_gcp_subset_of_the_instance_names_under_disable_custom_sans(build: Build, google, pub: str) -> None:
    api = build(gcp_block(google[1], disableCustomSANs=True))
    body = {"publicKey": pub, "ott": metadata_token(google[1]), "principals": [GCP_NAMES[1]]}
    assert issued(api.post("/ssh/sign", json=body)).principals == (GCP_NAMES[1],)


@pytest.mark.parametrize(
    ("options", "body", "status", "message"),
    [
        ({}, {"certType": "user", "principals": ["web-1"]}, 403, "type does not match"),
        ({"disableCustomSANs": True}, {"principals": ["web.example.com"]}, 403, "principals does not match"),
        ({}, {}, 400, "principals cannot be empty"),  # custom principals allowed: they must be asked for
        ({"disableCustomSANs": True}, {"validBefore": "721h"}, 403, "greater than maximum"),
        ({"claims": {"enableSSHCA": False}, "disableCustomSANs": True}, {}, 401, "sshCA is disabled"),
    ],
)
def test_gcp_refusals(build: Build, google, pub: str, authority_dir: Path, options, body, status, message) -> None:
    api = build(gcp_block(google[1], **options))
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": metadata_token(google[1]), **body})
    refused(r, status)
    assert message in r.get_json()["message"]
    assert ssh_rows(authority_dir) == 0


@pytest.mark.parametrize(
    "token",
    [
        lambda g: g.identity_token(GCP_AUD, exp=1_000_000_000, iat=999_999_000),  # expired
        lambda g: g.identity_token("https://elsewhere.example/1.0/ssh/sign#gcp/google"),  # another CA
        lambda g: g.identity_token(f"https://{AUDIENCE_HOST}/1.0/revoke#gcp/google"),  # another operation
    ],
)
def test_gcp_bad_tokens_are_refused(build: Build, google, pub: str, authority_dir: Path, token) -> None:
    api = build(gcp_block(google[1], disableCustomSANs=True))
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": token(google[0])})
    refused(r, 401)
    assert r.get_json()["message"] in ("token is expired", "invalid gcp token: invalid audience claim (aud)"), r.text
    assert ssh_rows(authority_dir) == 0


def test_gcp_trust_on_first_use_covers_ssh(build: Build, google, pub: str, authority_dir: Path) -> None:
    """step-ca claims the same per-instance key for SSH as for X.509: one certificate per identity."""
    api = build(gcp_block(google[1], disableCustomSANs=True))
    issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": metadata_token(google[1])}))
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": metadata_token(google[1])})
    refused(r, 401)
    assert ssh_rows(authority_dir) == 1


def test_gcp_x509_certificate_uses_up_the_ssh_first_use(build: Build, google, pub: str) -> None:
    from tests.helpers import make_csr

    api = build(gcp_block(google[1], disableCustomSANs=True))
    csr, _ = make_csr("web-1", None)
    token = metadata_token(google[1], f"https://{AUDIENCE_HOST}/1.0/sign#gcp/google")
    assert api.post("/1.0/sign", json={"csr": csr, "ott": token}).status_code == 201
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": metadata_token(google[1])})
    refused(r, 401)
    assert r.get_json()["message"] == "token already used"


def test_gcp_without_trust_on_first_use_signs_again(build: Build, google, pub: str) -> None:
    api = build(gcp_block(google[1], disableCustomSANs=True, disableTrustOnFirstUse=True))
    first = metadata_token(google[1])
    issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": first}))
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": first}), 401)  # the same token: replay
    later = google[0].identity_token(GCP_AUD, exp=int(time.time()) + 1800)  # a new token of the same instance
    issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": later}))


# ------------------------------------------------------------------- AWS
def aws_api(build: Build, tmp_path: Path, **options: Any) -> Client:
    roots = tmp_path / "iid-roots.pem"
    roots.write_bytes(_imds().roots_pem)
    return build({"type": "AWS", "name": "amazon", "accounts": ["123456789012"], "iidRoots": str(roots), **options})


def _imds() -> FakeIMDS:
    from tests.unit.provisioners.test_aws import _imds as shared_imds

    imds: FakeIMDS = shared_imds()
    return imds


def aws_token(**tamper: Any) -> str:
    from tests.unit.provisioners.test_aws import step_token

    token: str = step_token(audience=AWS_AUD, **tamper)
    return token


def test_aws_host_certificate_is_named_for_the_instance(build: Build, tmp_path: Path, pub: str) -> None:
    api = aws_api(build, tmp_path, disableCustomSANs=True)
    cert = issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": aws_token(), "certType": "host"}))
    assert (cert.type_name, cert.key_id, cert.principals) == ("host", "i-0a1b2c3d4e5f67890", AWS_NAMES)


@pytest.mark.parametrize(
    ("options", "body", "status"),
    [
        ({}, {"certType": "user", "principals": ["ec2-user"]}, 403),
        ({"disableCustomSANs": True}, {"principals": ["db.example.com"]}, 403),
        ({}, {}, 400),
    ],
)
def test_aws_refusals(build: Build, tmp_path: Path, pub: str, authority_dir: Path, options, body, status) -> None:
    api = aws_api(build, tmp_path, **options)
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": aws_token(), **body}), status)
    assert ssh_rows(authority_dir) == 0


def test_aws_expired_token_is_refused(build: Build, tmp_path: Path, pub: str, authority_dir: Path) -> None:
    api = aws_api(build, tmp_path, disableCustomSANs=True)
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": aws_token(exp=1_000_000_000, nbf=999_999_000,
                                                                                 iat=999_999_000)}), 401)
    assert ssh_rows(authority_dir) == 0


def test_aws_trust_on_first_use_covers_ssh(build: Build, tmp_path: Path, pub: str) -> None:
    api = aws_api(build, tmp_path, disableCustomSANs=True)
    issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": aws_token()}))
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": aws_token()}), 401)


# ----------------------------------------------------------------- Azure
@pytest.fixture
def azure() -> Iterator[tuple[FakeAzure, str]]:
    with serve_fake_azure() as served:
        yield served


def azure_api(build: Build, azure: FakeAzure, **options: Any) -> Client:
    vm = azure.vm
    return build({"type": "Azure", "name": "azure", "tenantID": vm.tenant, "resourceGroups": [vm.group],
                  "subscriptionIDs": [vm.subscription], "cirrus": {"discoveryURL": azure.discovery_url()},
                  **options})


def test_azure_host_certificate_is_named_for_the_vm(build: Build, azure, pub: str) -> None:
    api = azure_api(build, azure[0], disableCustomSANs=True)
    cert = issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": azure[0].access_token()}))
    assert (cert.type_name, cert.key_id, cert.principals) == ("host", "vm-1", ("vm-1",))


@pytest.mark.parametrize(
    ("options", "body", "status"),
    [
        ({}, {"certType": "user", "principals": ["azureuser"]}, 403),
        ({"disableCustomSANs": True}, {"principals": ["vm-2"]}, 403),
        ({}, {}, 400),
    ],
)
def test_azure_refusals(build: Build, azure, pub: str, authority_dir: Path, options, body, status) -> None:
    api = azure_api(build, azure[0], **options)
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": azure[0].access_token(), **body}), status)
    assert ssh_rows(authority_dir) == 0


def test_azure_wrong_audience_is_refused(build: Build, azure, pub: str, authority_dir: Path) -> None:
    api = azure_api(build, azure[0], disableCustomSANs=True)
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": azure[0].access_token("https://vault.azure.net/")}),
            401)
    assert ssh_rows(authority_dir) == 0


def test_azure_trust_on_first_use_covers_ssh(build: Build, azure, pub: str) -> None:
    api = azure_api(build, azure[0], disableCustomSANs=True)
    issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": azure[0].access_token()}))
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": azure[0].access_token()}), 401)
