"""The Azure provisioner through POST /1.0/sign, against the fake tenant and IMDS.

The token is the managed identity's access token exactly as IMDS hands it to `step ca token`
(no wrapping): routed by `tid`, checked against the tenant's discovery and JWKS.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.provisioners.azure import parse_mirid
from shared.runtime import Services, build_services
from tests.fakes.azure_imds import FakeAzure, serve_fake_azure
from tests.helpers import make_csr

SANS = ["vm-1.cirrus.example.com"]


@pytest.fixture
def azure() -> Iterator[tuple[FakeAzure, str]]:
    with serve_fake_azure() as served:
        yield served


@pytest.fixture
def make_api(authority_dir: Path, azure: tuple[FakeAzure, str]) -> Iterator[Any]:
    made: list[Services] = []

    def build(**options: Any) -> Client:
        path = authority_dir / "config.json"
        cfg = json.loads(path.read_text())
        vm = azure[0].vm
        block = {"type": "Azure", "name": "azure", "tenantID": vm.tenant, "resourceGroups": [vm.group],
                 "subscriptionIDs": [vm.subscription], "cirrus": {"discoveryURL": azure[0].discovery_url()}}
        block.update(options)
        cfg["authority"]["provisioners"].append(block)
        path.write_text(json.dumps(cfg))
        s = build_services(Settings.load(path))
        made.append(s)
        return Client(CirrusApp(s, mounts=default_mounts(s)))

    yield build
    for s in made:
        s.close()


def imds_token(base: str) -> str:
    req = urllib.request.Request(
        f"{base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
        headers={"Metadata": "true"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return str(json.loads(resp.read())["access_token"])


def certificates(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0])
    finally:
        db.close()


def sign(api: Client, token: str, cn: str = "vm-1", sans: list[str] = SANS) -> Any:
    csr, _ = make_csr(cn, sans)
    return api.post("/1.0/sign", json={"csr": csr, "ott": token})


@functools.cache
def _other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_mirid_parsing() -> None:
    assert parse_mirid("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm") == (
        "s", "g", "vm")
    assert parse_mirid("/subscriptions/s/resourcegroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i")
    for bad in ("", "/subscriptions/s/resourceGroups/g/providers/Microsoft.Web/sites/x",
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm/extra",
                "/subscriptions//resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm", None):
        assert parse_mirid(bad) is None


def test_managed_identity_token_gets_a_certificate_once(make_api: Any, azure: Any, authority_dir: Path) -> None:
    api = make_api()
    r = sign(api, imds_token(azure[1]))
    assert r.status_code == 201, r.text
    r = sign(api, imds_token(azure[1]))
    assert r.status_code == 401 and r.get_json()["message"] == "token already used"
    assert certificates(authority_dir) == 1


def test_without_trust_on_first_use_tokens_may_be_reused(make_api: Any, azure: Any, authority_dir: Path) -> None:
    api = make_api(disableTrustOnFirstUse=True)
    token = imds_token(azure[1])
    assert sign(api, token).status_code == 201
    assert sign(api, token).status_code == 201
    assert certificates(authority_dir) == 2


def test_disable_custom_sans_refuses_other_names(make_api: Any, azure: Any, authority_dir: Path) -> None:
    api = make_api(disableCustomSANs=True)
    assert sign(api, imds_token(azure[1]), "vm-1", ["evil.example.com"]).status_code == 403
    assert sign(api, imds_token(azure[1]), "vm-2", ["vm-1"]).status_code == 403
    assert certificates(authority_dir) == 0


def _bad(azure: FakeAzure, case: str) -> str:
    now = int(time.time())
    mirid = azure.vm.mirid
    return {
        "wrong tenant": lambda: azure.access_token(tid="00000000-0000-0000-0000-000000000000"),
        "wrong audience": lambda: azure.access_token("https://vault.azure.net"),
        "wrong issuer": lambda: azure.access_token(iss="https://sts.windows.net/other/"),
        "re-signed": lambda: azure.access_token(key=_other_key()),
        "expired": lambda: azure.access_token(iat=now - 90000, nbf=now - 90000, exp=now - 3600),
        "wrong resource group": lambda: azure.access_token(xms_mirid=mirid.replace("cirrus-rg", "other-rg")),
        "wrong subscription": lambda: azure.access_token(xms_mirid=mirid.replace("a1b2c3d4", "ffffffff")),
        "wrong object id": lambda: azure.access_token(oid="11111111-2222-3333-4444-555555555555"),
        "not a vm": lambda: azure.access_token(xms_mirid="/subscriptions/x/resourceGroups/cirrus-rg"),
    }[case]()


@pytest.mark.parametrize(
    "case",
    ["wrong tenant", "wrong audience", "wrong issuer", "re-signed", "expired", "wrong resource group",
     "wrong subscription", "wrong object id", "not a vm"],
)
def test_bad_tokens_are_refused(make_api: Any, azure: Any, authority_dir: Path, case: str) -> None:
    api = make_api(objectIDs=[azure[0].vm.object_id])
    r = sign(api, _bad(azure[0], case))
    assert r.status_code == 401, (case, r.text)
    assert set(r.get_json()) == {"status", "message"}
    assert certificates(authority_dir) == 0


def test_tenant_outage_is_503(make_api: Any, azure: Any, authority_dir: Path) -> None:
    api = make_api()
    azure[0].down = True
    r = sign(api, imds_token(azure[1]))
    assert r.status_code == 503, r.text
    azure[0].down = False
    assert sign(api, imds_token(azure[1])).status_code == 201
