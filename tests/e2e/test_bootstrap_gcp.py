"""`cirrus bootstrap` on a GCE VM, for real: `cirrus up` over TLS and the fake metadata server.

The VM side runs as a subprocess with `GCE_METADATA_HOST` pointing at the loopback fake (as
Google's client libraries honour it), trusts the CA by its root fingerprint only, gets a
certificate with the names `disableCustomSANs` forces, which `openssl verify` accepts, renews
it with mTLS, and a second bootstrap of the same instance is refused (trust on first use).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.fakes.gcp_metadata import FakeGoogle, serve_fake_google
from tests.served import cirrus_up

pytestmark = pytest.mark.interop


def gcp_provisioner(google_url: str) -> dict[str, Any]:
    """The GCP provisioner of project cirrus-test whose token keys the fake metadata server serves."""
    return {
        "type": "GCP",
        "name": "google",
        "projectIDs": ["cirrus-test"],
        "disableCustomSANs": True,
        "cirrus": {"jwksURL": f"{google_url}/oauth2/v3/certs"},
    }


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogle, str]]:
    with serve_fake_google() as served:
        yield served


@pytest.fixture
def ca(authority_dir: Path, tmp_path: Path, google: tuple[FakeGoogle, str]) -> Iterator[str]:
    provisioner = gcp_provisioner(google[1])
    with cirrus_up(authority_dir, tmp_path, provisioners=[provisioner]) as url:
        yield url


def fingerprint(authority_dir: Path) -> str:
    root = x509.load_pem_x509_certificate((authority_dir / "certs" / "root_ca.crt").read_bytes())
    return hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()


def bootstrap(google_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GCE_METADATA_HOST": google_url.removeprefix("http://")}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", "bootstrap", *args], capture_output=True, text=True, timeout=60, env=env
    )


def openssl_verify(root: Path, chain: Path, cert: Path) -> None:
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(cert)], capture_output=True, text=True
    )
    assert out.returncode == 0 and ": OK" in out.stdout, out.stderr


def dns_names(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def test_gcp_vm_bootstraps_renews_and_is_refused_a_second_time(
    ca: str, google: tuple[FakeGoogle, str], authority_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "etc-cirrus"
    common = ["--ca-url", ca, "--fingerprint", fingerprint(authority_dir), "--provisioner", "google"]
    first = bootstrap(google[1], *common, "--out-dir", str(out))  # the cloud is detected
    assert first.returncode == 0, first.stderr
    assert oct((out / "key.pem").stat().st_mode & 0o777) == "0o600"
    assert {p.name for p in out.iterdir()} == {"key.pem", "cert.pem", "chain.pem", "root_ca.crt"}
    openssl_verify(out / "root_ca.crt", out / "chain.pem", out / "cert.pem")
    assert dns_names(out / "cert.pem") == [
        "web-1.c.cirrus-test.internal",
        "web-1.us-central1-a.c.cirrus-test.internal",
    ]
    audience = google[0].identity_requests[0]["audience"][0]
    assert audience == f"{ca}/1.0/sign#gcp/google"
    serial = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes()).serial_number

    renewed = bootstrap(google[1], *common, "--out-dir", str(out), "--renew")
    assert renewed.returncode == 0, renewed.stderr
    new = x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    assert new.serial_number != serial
    openssl_verify(out / "root_ca.crt", out / "chain.pem", out / "cert.pem")
    assert dns_names(out / "cert.pem") == dns_names(out / "chain.pem")

    again = bootstrap(google[1], *common, "--out-dir", str(tmp_path / "other"), "--cloud", "gcp")
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "401" in again.stderr and "already used" in again.stderr


def test_wrong_fingerprint_is_refused_before_any_identity_leaves_the_vm(
    ca: str, google: tuple[FakeGoogle, str], tmp_path: Path
) -> None:
    r = bootstrap(google[1], "--ca-url", ca, "--fingerprint", "ab" * 32, "--provisioner", "google",
                  "--out-dir", str(tmp_path / "o"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert google[0].identity_requests == []


def test_timer_units_are_printed() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "shared.cli", "bootstrap", "--ca-url", "https://ca.example.com", "--fingerprint",
         "ab" * 32, "--provisioner", "google", "--out-dir", "/etc/cirrus", "--timer", "print"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "[Timer]" in r.stdout and "OnUnitActiveSec=8h" in r.stdout
    assert "bootstrap --renew --ca-url https://ca.example.com" in r.stdout and "--out-dir /etc/cirrus" in r.stdout
