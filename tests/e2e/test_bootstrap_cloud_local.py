"""`cirrus bootstrap` against the local cloud mode: the Cloud Functions on the Firestore emulator.

The same GCE VM as in test_bootstrap_gcp.py, but the CA is `infra/cloud_local.py` (the ca_api
function forwards the identity token to the issuer function, trust on first use is a Firestore
claim): the certificate verifies with openssl and carries the forced names, renewal is the Bearer
(x5c) flow since no TLS reaches a function, and a second bootstrap of the instance is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.test_bootstrap_gcp import dns_names, fingerprint, openssl_verify
from tests.e2e.test_cloud_local import REPO, CloudLocalRun, cloud  # noqa: F401 - the fixture
from tests.fakes.gcp_metadata import FakeGoogle, serve_fake_google

pytestmark = [pytest.mark.firestore, pytest.mark.pubsub, pytest.mark.gcs]


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogle, str]]:
    with serve_fake_google() as served:
        yield served


@pytest.fixture
def gcp_cloud(
    authority_dir: Path, google: tuple[FakeGoogle, str], request: pytest.FixtureRequest
) -> CloudLocalRun:
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["authority"]["provisioners"].append(
        {"type": "GCP", "name": "google", "projectIDs": ["cirrus-test"], "disableCustomSANs": True,
         "cirrus": {"jwksURL": f"{google[1]}/oauth2/v3/certs"}}
    )
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    run: CloudLocalRun = request.getfixturevalue("cloud")
    return run


def bootstrap(google_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GCE_METADATA_HOST": google_url.removeprefix("http://")}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "bootstrap", *args], cwd=REPO, capture_output=True, text=True,
        timeout=90, env=env,
    )


@pytest.mark.timeout(300)
def test_gcp_vm_bootstraps_on_the_functions(
    gcp_cloud: CloudLocalRun, google: tuple[FakeGoogle, str], authority_dir: Path, tmp_path: Path
) -> None:
    ca = gcp_cloud.url("ca_api")
    out = tmp_path / "etc-cirrus"
    common = ["--ca-url", ca, "--fingerprint", fingerprint(authority_dir), "--provisioner", "google"]
    first = bootstrap(google[1], *common, "--out-dir", str(out), "--cloud", "gcp")
    assert first.returncode == 0, first.stderr + gcp_cloud.logs()
    openssl_verify(out / "root_ca.crt", out / "chain.pem", out / "cert.pem")
    assert dns_names(out / "cert.pem") == [
        "web-1.c.cirrus-test.internal",
        "web-1.us-central1-a.c.cirrus-test.internal",
    ]
    serial = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number
    renewed = bootstrap(google[1], *common, "--out-dir", str(out), "--renew", "--bearer")
    assert renewed.returncode == 0, renewed.stderr + gcp_cloud.logs()
    assert x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number != serial
    again = bootstrap(google[1], *common, "--out-dir", str(tmp_path / "other"), "--cloud", "gcp")
    assert again.returncode == 1 and "already used" in again.stderr, again.stderr
