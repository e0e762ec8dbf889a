"""Certificates issued by step-ca 0.19.0 (built from Debian's sources, as the benchmarks build it)
reported to a central `cirrus up` with `cirrus linked report`, then listed as its endpoints."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from bench.sign_throughput import build_step_ca, step_ca_config, wait_ready
from shared.cli.init import init_authority
from tests.helpers import make_csr, mint_token, sign_claims
from tests.integration.test_linked_mode import add_link, central, cirrus, endpoints_at, free_port  # noqa: F401

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="session")
def step_ca_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    binary = build_step_ca(tmp_path_factory.mktemp("step-ca-build"))
    if binary is None:
        pytest.fail("needs golang-go and golang-github-smallstep-certificates-dev (infra/test.sh installs them)")
    return binary


@pytest.fixture
def step_ca(step_ca_binary: Path, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """step-ca serving a fresh authority folder (its own root); yields (folder, port)."""
    folder = tmp_path / "stepca-authority"
    init_authority(folder, name="Step", p2c=1000)
    work = tmp_path / "stepca-work"
    work.mkdir()
    port = free_port()
    config = step_ca_config(folder, work, port)
    log = (tmp_path / "step-ca.log").open("w")
    proc = subprocess.Popen([str(step_ca_binary), str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(folder / "certs" / "root_ca.crt", port)
        yield folder, port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def step_ca_sign(folder: Path, port: int, name: str) -> str:
    csr, _ = make_csr(name)
    claims = sign_claims(name, [name], aud=f"https://127.0.0.1:{port}/1.0/sign")
    body = json.dumps({"csr": csr, "ott": mint_token(folder, claims)}).encode()
    ctx = ssl.create_default_context(cafile=str(folder / "certs" / "root_ca.crt"))
    req = urllib.request.Request(f"https://127.0.0.1:{port}/1.0/sign", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        return str(json.loads(resp.read())["crt"])


def test_step_ca_certificates_reported_with_cirrus_linked_report(
    step_ca: tuple[Path, int], central: str, authority_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    folder, port = step_ca
    issued = tmp_path / "issued"
    issued.mkdir()
    names = ["api.step.example", "db.step.example"]
    serials = {}
    for name in names:
        pem = step_ca_sign(folder, port, name)
        (issued / f"{name}.crt").write_text(pem)
        serials[name] = str(x509.load_pem_x509_certificate(pem.encode()).serial_number)
    token = add_link(authority_dir, folder, "step")
    (tmp_path / "token").write_text(token)
    common = ["linked", "report", "--ca-url", central, "--token-file", str(tmp_path / "token"),
              "--root", str(authority_dir / "certs" / "root_ca.crt")]  # fmt: skip
    out = cirrus(*common, str(issued))
    assert [line.rsplit(": ", 1)[1].split()[0] for line in out.stdout.splitlines()] == ["recorded", "recorded"]
    revoked = cirrus(*common, "--revoked", str(issued / "db.step.example.crt"))
    assert "recorded" in revoked.stdout
    seen = endpoints_at(authority_dir)
    for name in names:
        assert seen[name]["provisionerId"] == "linked/step"
        assert [c["serial"] for c in seen[name]["certificates"]] == [serials[name]]
    assert [c["status"] for c in seen["db.step.example"]["certificates"]] == ["revoked"]
    assert [c["status"] for c in seen["api.step.example"]["certificates"]] == ["active"]
