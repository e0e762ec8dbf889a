"""Issue 16 "what it must show", item 2: HSM root, AWS KMS intermediate, a registration authority in front.

The root key is made on SoftHSM2 (PKCS#11), the intermediate key in AWS KMS (moto's server, reached
by boto3 through the environment an operator would set), both through the `cirrus ca` ceremony
steps; the online authority then runs as a real `cirrus up` that never sees the root key, and a
second Cirrus in registration-authority mode (`"ra"` block, no key of its own) authorizes a client's
request with its own provisioner and forwards it there. The certificate the client gets must pass
`openssl verify` against the HSM root. (The same RA in front of step-ca 0.19.0 is
tests/interop/test_registration_authority_stepca.py.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main as cirrus
from shared.config import Settings
from shared.runtime import build_services
from tests.e2e.test_ceremony import aws_env, moto_endpoint  # noqa: F401 - the moto KMS fixtures
from tests.fakes.softhsm import SoftHSM
from tests.helpers import make_csr, mint_sign_token
from tests.interop.test_cli_session import free_port
from tests.interop.test_registration_authority import _ra_dir


@pytest.fixture
def upstream(authority_dir: Path, tmp_path: Path) -> Iterator[tuple[Path, Callable[[], str]]]:
    """Yields a starter: `cirrus up` on `authority_dir` once the ceremony has installed its keys."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        port = free_port()
        cfg = json.loads((authority_dir / "config.json").read_text())
        cfg["address"] = f"127.0.0.1:{port}"
        (authority_dir / "config.json").write_text(json.dumps(cfg))
        log = (tmp_path / "upstream.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "up", "--dir", str(authority_dir)],
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip  # the AWS_* environment passes on
        procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = subprocess.run([sys.executable, "-m", "shared.cli", "health", "--dir", str(authority_dir)],
                                   capture_output=True, text=True)  # fmt: skip
            if probe.returncode == 0:
                return f"https://127.0.0.1:{port}"
            assert proc.poll() is None, (tmp_path / "upstream.log").read_text()
            time.sleep(0.2)
        raise AssertionError("cirrus up did not start: " + (tmp_path / "upstream.log").read_text())

    yield authority_dir, start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_hsm_root_kms_intermediate_behind_a_registration_authority(
    upstream: tuple[Path, Callable[[], str]], softhsm_token: SoftHSM, aws_env: str, tmp_path: Path  # noqa: F811
) -> None:
    authority_dir, start = upstream
    root_uri = softhsm_token.uri("ra-e2e-root")
    int_uri = "awskms:key-id=alias/ra-e2e-intermediate;region=us-east-1"
    root_crt, csr, int_crt = tmp_path / "root.crt", tmp_path / "int.csr", tmp_path / "int.crt"
    assert cirrus(["ca", "root", "--kms", root_uri, "--create", "EC-P256", "--name", "HSM", "--out", str(root_crt)]) == 0
    assert cirrus(["ca", "intermediate-csr", "--kms", int_uri, "--create", "EC-P256", "--name", "KMS",
                   "--out", str(csr)]) == 0  # fmt: skip
    assert cirrus(["ca", "sign-intermediate", str(csr), "--root-kms", root_uri, "--root", str(root_crt),
                   "--out", str(int_crt), "--days", "30"]) == 0  # fmt: skip
    assert cirrus(["ca", "install", "--dir", str(authority_dir), "--cert", str(int_crt), "--kms", int_uri,
                   "--root", str(root_crt)]) == 0  # fmt: skip
    assert "pkcs11" not in (authority_dir / "config.json").read_text()  # the online CA never names the root key

    url = start()
    ra_dir = _ra_dir(authority_dir, tmp_path, url)
    services = build_services(Settings.load(ra_dir / "config.json"))
    try:
        client = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr_pem, _ = make_csr("app.example.com", ["app.example.com"])
        resp = client.post("/1.0/sign", json={"csr": csr_pem, "ott": mint_sign_token(ra_dir, "app.example.com",
                                                                                      ["app.example.com"])})  # fmt: skip
        assert resp.status_code == 201, resp.get_data(as_text=True)
        body = resp.get_json()
        leaf = x509.load_pem_x509_certificate(body["crt"].encode())
        assert services.store.get_certificate(str(leaf.serial_number)) is not None  # recorded at the RA
        assert x509.load_pem_x509_certificate(body["ca"].encode()) == x509.load_pem_x509_certificate(int_crt.read_bytes())
    finally:
        services.close()
    (tmp_path / "leaf.pem").write_text(body["crt"])
    (tmp_path / "chain.pem").write_text(body["ca"])
    out = subprocess.run(["openssl", "verify", "-CAfile", str(root_crt), "-untrusted", str(tmp_path / "chain.pem"),
                          str(tmp_path / "leaf.pem")], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0 and ": OK" in out.stdout, out.stdout + out.stderr
