"""`cirrus bootstrap` on an EC2 VM: `cirrus up` over TLS and the fake IMDSv2.

The VM side finds IMDS through `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the AWS SDKs' variable), reads
the provisioner's `imdsVersions` from `GET /provisioners` as the step CLI does (here only v2, so
every read carries a session token), wraps document and signature in step's HS256 token, gets the
forced names, renews with mTLS, and a second bootstrap of the instance is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.test_bootstrap_gcp import dns_names, fingerprint, openssl_verify
from tests.fakes.aws_imds import FakeIMDS, serve_fake_imds
from tests.interop.test_cli_session import free_port
from tests.served import cirrus_up

pytestmark = pytest.mark.interop


@pytest.fixture
def imds() -> Iterator[tuple[FakeIMDS, str]]:
    with serve_fake_imds() as served:
        yield served


@pytest.fixture
def ca(authority_dir: Path, tmp_path: Path, imds: tuple[FakeIMDS, str]) -> Iterator[str]:
    roots = tmp_path / "iid.pem"
    roots.write_bytes(imds[0].roots_pem)
    provisioner = {"type": "AWS", "name": "amazon", "accounts": ["123456789012"], "disableCustomSANs": True,
                   "imdsVersions": ["v2"], "iidRoots": str(roots)}
    with cirrus_up(authority_dir, tmp_path, provisioners=[provisioner]) as url:
        yield url


def bootstrap(imds_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url, "GCE_METADATA_HOST": f"127.0.0.1:{free_port()}"}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "bootstrap", *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_ec2_vm_bootstraps_renews_and_is_refused_a_second_time(
    ca: str, imds: tuple[FakeIMDS, str], authority_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "etc-cirrus"
    common = ["--ca-url", ca, "--fingerprint", fingerprint(authority_dir), "--provisioner", "amazon"]
    first = bootstrap(imds[1], *common, "--out-dir", str(out))  # detected: GCP's port is closed, IMDS answers
    assert first.returncode == 0, first.stderr
    assert oct((out / "key.pem").stat().st_mode & 0o777) == "0o600"
    openssl_verify(out / "root_ca.crt", out / "chain.pem", out / "cert.pem")
    assert dns_names(out / "cert.pem") == ["ip-172-31-10-20.us-west-2.compute.internal"]
    cert = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)
    assert [str(i) for i in ips] == ["172.31.10.20"]
    reads = [r for r in imds[0].requests if r[0] == "GET"]
    assert reads and all(had_token for _, _, had_token in reads)  # IMDSv2 only

    renewed = bootstrap(imds[1], *common, "--out-dir", str(out), "--renew")
    assert renewed.returncode == 0, renewed.stderr
    assert x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number != cert.serial_number
    openssl_verify(out / "root_ca.crt", out / "chain.pem", out / "cert.pem")

    time.sleep(1.05)  # a different token, same instance
    again = bootstrap(imds[1], *common, "--out-dir", str(tmp_path / "other"), "--cloud", "aws")
    assert again.returncode == 1 and "already used" in again.stderr and "Traceback" not in again.stderr
