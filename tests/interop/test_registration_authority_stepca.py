"""The registration authority in front of step-ca 0.19.0 (issue 16 item 5).

step-ca is built from Debian's packaged sources as `bench/sign_throughput.py` does and serves
the same root, intermediate and `admin` JWK provisioner as the `cirrus init` authority; the RA
(in-process, its own provisioners, no key) forwards to it over real HTTPS. The Go build takes
minutes, so the binary is kept in `CIRRUS_STEP_CA_CACHE` (default /tmp/cirrus-step-ca-0.19) and
reused by later runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from werkzeug.test import Client

from bench.sign_throughput import build_step_ca, step_ca_config, wait_ready
from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.events.base import CERTIFICATE_ISSUED, CERTIFICATE_REVOKED
from shared.runtime import build_services
from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims
from tests.interop.test_cli_session import free_port
from tests.interop.test_registration_authority import _count, _ra_dir

pytestmark = pytest.mark.interop

CACHE = Path(os.environ.get("CIRRUS_STEP_CA_CACHE", "/tmp/cirrus-step-ca-0.19"))


@pytest.fixture(scope="session")
def step_ca_binary() -> Path:
    cached = CACHE / "step-ca"
    if cached.is_file():
        return cached
    work = Path(tempfile.mkdtemp(prefix="step-ca-build-"))
    built = build_step_ca(work)
    if built is None:
        pytest.fail("needs golang-go and golang-github-smallstep-certificates-dev (infra/test.sh installs them)")
    CACHE.mkdir(parents=True, exist_ok=True)
    shutil.copy(built, cached)
    shutil.rmtree(work, ignore_errors=True)
    return cached


@pytest.fixture
def step_ca(step_ca_binary: Path, authority_dir: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    work = tmp_path / "step"
    work.mkdir()
    config = step_ca_config(authority_dir, work, port)
    log = (tmp_path / "step-ca.log").open("wb")
    proc = subprocess.Popen([str(step_ca_binary), str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(authority_dir / "certs" / "root_ca.crt", port)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    yield proc, f"https://127.0.0.1:{port}"
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_ra_in_front_of_step_ca(step_ca, authority_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc, url = step_ca
    d = _ra_dir(authority_dir, tmp_path, url)
    services = build_services(Settings.load(d / "config.json"))
    try:
        client = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr, key = make_csr("svc.example.com", ["svc.example.com", "alt.example.com"])
        token = mint_sign_token(d, "svc.example.com", ["svc.example.com", "alt.example.com"])
        resp = client.post("/1.0/sign", json={"csr": csr, "ott": token})
        assert resp.status_code == 201, resp.get_data(as_text=True) + (tmp_path / "step-ca.log").read_text()
        body = resp.get_json()
        leaf = x509.load_pem_x509_certificate(body["crt"].encode())
        assert leaf.public_key() == key.public_key()
        record = services.store.get_certificate(str(leaf.serial_number))
        assert record is not None and set(record.sans) == {"svc.example.com", "alt.example.com"}
        assert _count(services, CERTIFICATE_ISSUED) == 1
        (tmp_path / "leaf.pem").write_text(body["crt"])
        (tmp_path / "chain.pem").write_text(body["ca"])
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", str(authority_dir / "certs" / "root_ca.crt"),
             "-untrusted", str(tmp_path / "chain.pem"), str(tmp_path / "leaf.pem")],
            capture_output=True, text=True,
        )
        assert out.returncode == 0 and ": OK" in out.stdout, out.stderr

        # Revocation goes to step-ca with a revoke token the RA mints.
        serial = str(leaf.serial_number)
        revoke = mint_token(d, sign_claims(serial, None, op="revoke"))
        resp = client.post("/1.0/revoke", json={"serial": serial, "ott": revoke, "reasonCode": 4, "passive": True})
        assert resp.status_code == 200, resp.get_data(as_text=True) + (tmp_path / "step-ca.log").read_text()
        assert _count(services, CERTIFICATE_REVOKED) == 1

        # step-ca stopped: 503, nothing recorded.
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        csr, _ = make_csr("down.example.com", ["down.example.com"])
        resp = client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(d, "down.example.com", ["down.example.com"])})
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert _count(services, CERTIFICATE_ISSUED) == 1
    finally:
        services.close()
