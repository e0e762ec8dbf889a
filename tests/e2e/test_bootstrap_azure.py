"""`cirrus bootstrap` on an Azure VM: `cirrus up` over TLS, the fake IMDS and tenant.

The VM side finds IMDS through `CIRRUS_AZURE_IMDS_ENDPOINT` (GCP's and AWS's endpoints point at
closed ports, so detection falls through to Azure), sends the managed identity's access token,
gets the VM name as its one forced SAN, renews with mTLS, and a second bootstrap is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_bootstrap_gcp import dns_names, fingerprint, openssl_verify
from tests.fakes.azure_imds import FakeAzure, serve_fake_azure
from tests.interop.test_cli_session import free_port
from tests.served import cirrus_up

pytestmark = pytest.mark.interop


@pytest.fixture
def azure() -> Iterator[tuple[FakeAzure, str]]:
    with serve_fake_azure() as served:
        yield served


@pytest.fixture
def ca(authority_dir: Path, tmp_path: Path, azure: tuple[FakeAzure, str]) -> Iterator[str]:
    vm = azure[0].vm
    provisioner = {"type": "Azure", "name": "azure", "tenantID": vm.tenant, "resourceGroups": [vm.group],
                   "disableCustomSANs": True, "cirrus": {"discoveryURL": azure[0].discovery_url()}}
    with cirrus_up(authority_dir, tmp_path, provisioners=[provisioner]) as url:
        yield url


def bootstrap(base: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CIRRUS_AZURE_IMDS_ENDPOINT": base, "GCE_METADATA_HOST": f"127.0.0.1:{free_port()}",
           "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "bootstrap", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_azure_vm_bootstraps_renews_and_is_refused_a_second_time(
    ca: str, azure: tuple[FakeAzure, str], authority_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "etc-cirrus"
    common = ["--ca-url", ca, "--fingerprint", fingerprint(authority_dir), "--provisioner", "azure"]
    first = bootstrap(azure[1], *common, "--out-dir", str(out))
    assert first.returncode == 0, first.stderr
    openssl_verify(out / "root_ca.crt", out / "chain.pem", out / "cert.pem")
    assert dns_names(out / "cert.pem") == ["vm-1"]
    renewed = bootstrap(azure[1], *common, "--out-dir", str(out), "--renew")
    assert renewed.returncode == 0, renewed.stderr
    openssl_verify(out / "root_ca.crt", out / "chain.pem", out / "cert.pem")
    again = bootstrap(azure[1], *common, "--out-dir", str(tmp_path / "other"), "--cloud", "azure")
    assert again.returncode == 1 and "already used" in again.stderr and "Traceback" not in again.stderr
