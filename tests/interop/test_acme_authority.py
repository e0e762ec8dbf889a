"""certbot against `cirrus up` itself: ACME on the real issuing authority.

The ACME provisioner's claims apply, certificates land in the store with their
endpoint (grouped by subject: renewal is off for ACME), chains verify with
openssl and pass pkilint.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.clock import SystemClock
from shared.config import Settings
from shared.store.open import open_store
from tests.helpers import pkilint_errors
from tests.interop.conftest import client_env
from tests.interop.test_acme_lego import lego
from tests.interop.test_cli_session import cirrus, free_port, openssl_verify
from tests.unit.acme.acme_support import ChallTestSrv

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture
def acme_ca(authority_dir: Path, tmp_path: Path):
    dns = ChallTestSrv()
    port, http01 = free_port(), free_port()
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["address"] = f"127.0.0.1:{port}"
    for p in cfg["authority"]["provisioners"]:
        if p["type"] == "ACME":
            p["claims"] = {"disableRenewal": True, "defaultTLSCertDuration": "2h", "maxTLSCertDuration": "4h"}
            p["cirrus"] = {
                "allowLoopback": True,
                "http01Port": http01,
                "dnsResolver": f"127.0.0.1:{dns.dns_port}",
                "validationTimeout": 5,
            }
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--dir", str(authority_dir), "--workers", "2"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while cirrus("health", "--dir", str(authority_dir), check=False).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.2)
    yield port, http01
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=15)
    dns.close()


def certbot(
    port: int, http01: int, authority_dir: Path, tmp_path: Path, domain: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("certbot")
    assert exe, "certbot is missing: pip install certbot"
    return subprocess.run(
        [
            exe,
            "--non-interactive",
            "--server",
            f"https://127.0.0.1:{port}/acme/acme/directory",
            "--config-dir",
            str(tmp_path / "etc"),
            "--work-dir",
            str(tmp_path / "work"),
            "--logs-dir",
            str(tmp_path / "logs"),
            "certonly",
            "--standalone",
            "--preferred-challenges",
            "http-01",
            "--http-01-port",
            str(http01),
            "--http-01-address",
            "127.0.0.1",
            "--agree-tos",
            "--register-unsafely-without-email",
            "-d",
            domain,
            *extra,
        ],
        env=client_env(REQUESTS_CA_BUNDLE=str(authority_dir / "certs" / "root_ca.crt")),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_certbot_on_the_real_authority(acme_ca, authority_dir: Path, tmp_path: Path) -> None:
    port, http01 = acme_ca
    domain = "app.acme.test"
    out = certbot(port, http01, authority_dir, tmp_path, domain)
    assert out.returncode == 0, out.stdout + out.stderr
    live = tmp_path / "etc" / "live" / domain
    first = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    openssl_verify(authority_dir, live / "fullchain.pem")
    assert pkilint_errors(first.public_bytes(serialization.Encoding.DER)) == []
    assert first.subject.rfc4514_string() == f"CN={domain}"
    life = first.not_valid_after_utc - first.not_valid_before_utc
    assert abs(life.total_seconds() - (2 * 3600 + 60)) <= 5  # the ACME provisioner's default, plus backdate

    out = certbot(port, http01, authority_dir, tmp_path, domain, "--force-renewal")
    assert out.returncode == 0, out.stdout + out.stderr
    second = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    assert second.serial_number != first.serial_number

    settings = Settings.load(authority_dir / "config.json")
    store = open_store(settings.store, clock=SystemClock())
    try:
        a, b = (store.get_certificate(str(c.serial_number)) for c in (first, second))
        assert a is not None and b is not None
        assert a.provisioner.type == "ACME" and a.endpoint_id == b.endpoint_id  # grouped by subject
    finally:
        store.close()
    # `cirrus up`'s workers spend ACME nonces in the memory they share, not in the store.
    import sqlite3

    with sqlite3.connect(authority_dir / "db" / "cirrus.db") as db:
        spent = db.execute("SELECT COUNT(*) FROM used_tokens WHERE namespace = 'acme-nonce'").fetchone()[0]
    assert spent == 0


def test_lego_on_the_real_authority(acme_ca, authority_dir: Path, tmp_path: Path) -> None:
    """lego (Go) against `cirrus up`: its polls meet the after-answer validation and issuance."""
    port, http01 = acme_ca
    domain = "lego.acme.test"
    started = time.monotonic()
    crt = lego(
        f"https://127.0.0.1:{port}/acme/acme/directory",
        authority_dir / "certs" / "root_ca.crt",
        tmp_path,
        domain,
        "--http",
        "--http.port",
        f"127.0.0.1:{http01}",
    )
    openssl_verify(authority_dir, crt)
    leaf = x509.load_pem_x509_certificates(crt.read_bytes())[0]
    assert pkilint_errors(leaf.public_bytes(serialization.Encoding.DER)) == []
    assert time.monotonic() - started < 60
