"""step-ca's own Go client library against `cirrus up` serving several issuing authorities (issue 16).

The client (Debian's 0.19.0 `ca` package, tests/interop/stepclient) drops any path from the CA URL,
so it reaches a further authority the other way Cirrus offers: at the default address, by its
provisioner. With `deep-admin` (root -> mid -> deep) it signs, renews and rekeys over mTLS and
revokes over mTLS, each answered by the deep authority; its TLS client certificate carries the
leaf and one CA certificate only, so `cirrus up` must know the mid CA to verify it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e.multi_authority import _ceremony  # noqa: F401  (the hierarchy, made by the ceremony commands)
from tests.interop.test_cli_session import server  # noqa: F401  (the `cirrus up` fixture)
from tests.interop.test_step_client import stepclient  # noqa: F401  (the Go client, built once)

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture
def authority_dir(_ceremony: Path, tmp_path: Path) -> Path:  # noqa: F811
    """The multi-authority deployment, where the `server` fixture looks for the authority to run."""
    shutil.copytree(_ceremony / "ca", tmp_path / "ca")
    return tmp_path / "ca"


def test_step_client_reaches_a_two_level_authority_by_its_provisioner(
    stepclient: Path, server, authority_dir: Path, _ceremony: Path  # noqa: F811
) -> None:
    cfg = json.loads((authority_dir / "config.json").read_text())
    port = cfg["address"].rsplit(":", 1)[1]
    kid = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())["kid"]
    out = subprocess.run(
        [str(stepclient), f"https://127.0.0.1:{port}", str(authority_dir / "certs" / "root_ca.crt"), "deep-admin",
         kid, str(authority_dir / "secrets" / "password"), "svc.deep.internal"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr + server[1].read_text()
    result = json.loads(out.stdout)
    assert result["revoke"] == "ok"
    assert result["chain"] == 3  # leaf, deep, mid: up to, not including, the root
    assert len({result["signed"], result["renewed"], result["rekeyed"]}) == 3
    deep = x509.load_pem_x509_certificate((_ceremony / "offline" / "deep.crt").read_bytes())
    from shared.config import Settings
    from shared.runtime import build_services

    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        for serial in (result["signed"], result["renewed"], result["rekeyed"]):
            record = services.store.get_certificate(serial)
            assert record is not None and record.authority_id == "deep", serial
            assert x509.load_der_x509_certificate(record.der).issuer == deep.subject
    finally:
        services.close()
