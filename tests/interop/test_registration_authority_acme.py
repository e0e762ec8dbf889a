"""certbot against a registration authority (`cirrus up`, no key) in front of an upstream `cirrus up`.

ACME's finalize runs the RA's pipeline and forwards the CSR upstream; the RA records the
certificate under its ACME provisioner and certbot gets the upstream's chain.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from shared.clock import SystemClock
from shared.config import Settings
from shared.store.open import open_store
from tests.interop.test_acme_authority import certbot
from tests.interop.test_cli_session import (
    cirrus,
    free_port,
    openssl_verify,
    server,  # noqa: F401 - the upstream `cirrus up` fixture
)
from tests.interop.test_registration_authority import _ra_dir
from tests.unit.acme.acme_support import ChallTestSrv

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_certbot_through_the_ra(server, authority_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    upstream = "https://" + json.loads((authority_dir / "config.json").read_text())["address"]
    d = _ra_dir(authority_dir, tmp_path, upstream)
    dns = ChallTestSrv()
    port, http01 = free_port(), free_port()
    cfg = json.loads((d / "config.json").read_text())
    cfg["address"] = f"127.0.0.1:{port}"
    for p in cfg["authority"]["provisioners"]:
        if p["type"] == "ACME":
            p["cirrus"] = {
                "allowLoopback": True, "http01Port": http01, "dnsResolver": f"127.0.0.1:{dns.dns_port}",
                "validationTimeout": 5,
            }
    (d / "config.json").write_text(json.dumps(cfg))
    log = (tmp_path / "ra.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--dir", str(d), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while cirrus("health", "--dir", str(d), check=False).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "ra.log").read_text()
            time.sleep(0.2)
        domain = "app.ra.test"
        out = certbot(port, http01, authority_dir, tmp_path, domain)
        assert out.returncode == 0, out.stdout + out.stderr + (tmp_path / "ra.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        dns.close()
    live = tmp_path / "etc" / "live" / domain
    leaf = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    leaf.verify_directly_issued_by(intermediate)
    openssl_verify(authority_dir, live / "fullchain.pem")
    store = open_store(Settings.load(d / "config.json").store, clock=SystemClock())
    try:
        record = store.get_certificate(str(leaf.serial_number))
        assert record is not None and record.provisioner.type == "ACME" and record.common_name == domain
    finally:
        store.close()
