"""The SSH CA keys in the Terraform module: who may sign with them, who only reads them.

The issuer (or ca_api while the issuer is not deployed) signs SSH certificates;
ca_api otherwise reads the public keys only; crl_publish reads them for the KRL.
No other function gets a role on them or their URIs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.test_terraform import MODULE, function_env_names, parse_dir

SIGN = "roles/cloudkms.signerVerifier"
READ = "roles/cloudkms.publicKeyViewer"
SSH_ENV = {"CIRRUS_SSH_USER_KEY", "CIRRUS_SSH_HOST_KEY"}


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return parse_dir(MODULE)


def test_ssh_key_roles(module: dict[str, Any]) -> None:
    roles = module["locals"]["ssh_key_roles"]
    assert set(roles) == {"issuer", "ca_api", "crl_publish"}
    assert roles["issuer"] == [SIGN, READ]
    assert roles["crl_publish"] == [READ]
    # ca_api signs only while there is no issuer to forward to.
    ca_api = re.sub(r"\s", "", roles["ca_api"])
    assert ca_api == f'${{local.issuer_deployed?["{READ}"]:["{SIGN}","{READ}"]}}'
    grants = re.sub(r"\s", "", module["locals"]["ssh_key_grants"])
    assert 'forkindin["user","host"]' in grants and "contains(keys(local.deployed),fn)" in grants
    member = module["resource"]["google_kms_crypto_key_iam_member.ssh"]
    assert member["for_each"] == "${local.ssh_key_grants}"
    assert member["crypto_key_id"] == "${google_kms_crypto_key.ssh[each.value.kind].id}"


@pytest.mark.parametrize("issuer_deployed", [True, False], ids=["issuer-deployed", "issuer-pending"])
def test_only_the_ssh_key_holders_get_the_ssh_key_uris(module: dict[str, Any], issuer_deployed: bool) -> None:
    functions = {
        n: {**f, "deployed": issuer_deployed if n == "issuer" else True}
        for n, f in module["locals"]["functions"].items()
    }
    env = function_env_names(module, functions)
    holders = {n for n, names in env.items() if names & SSH_ENV}
    expected = {"ca_api", "crl_publish"} | ({"issuer"} if issuer_deployed else set())
    assert holders == expected
    assert all(env[n] >= SSH_ENV for n in holders)
    assert not holders & {"ocsp", "acme", "sweep", "dashboard"}


def test_ssh_keys_are_p256_in_an_hsm(module: dict[str, Any]) -> None:
    key = module["resource"]["google_kms_crypto_key.ssh"]
    assert key["for_each"] == '${toset(["user", "host"])}'
    template = key["version_template"][0] if isinstance(key["version_template"], list) else key["version_template"]
    assert template["algorithm"] == "EC_SIGN_P256_SHA256" and template["protection_level"] == "HSM"
    assert Path(MODULE / "outputs.tf").read_text().count("ssh_key_uris") == 2
