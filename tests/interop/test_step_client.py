"""step-ca's own Go client library (smallstep/certificates `ca`, Debian's 0.19.0 sources) against Cirrus.

The program in `stepclient/` does what `step ca token/certificate/renew/rekey/revoke` do with
that library: fetch `/provisioners` and the provisioner's `encryptedKey`, decrypt it with the
password, mint a token, bootstrap trust from the token's root fingerprint, sign, renew and rekey
over mTLS, revoke over mTLS. It is built in GOPATH mode from Debian's packaged sources
(golang-go, golang-github-smallstep-certificates-dev; infra/test.sh installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.interop.test_cli_session import server  # noqa: F401  (the `cirrus up` fixture)

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SOURCE = Path(__file__).parent / "stepclient" / "main.go"
GOCODE = "/usr/share/gocode"


@pytest.fixture(scope="session")
def stepclient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not Path(GOCODE, "src/github.com/smallstep/certificates/ca").is_dir():
        pytest.fail("needs golang-go and golang-github-smallstep-certificates-dev (infra/test.sh installs them)")
    work = tmp_path_factory.mktemp("stepclient")
    binary = work / "stepclient"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{work}:{GOCODE}",
        "GOCACHE": str(work / "cache"),
        "GOFLAGS": "",
    }
    out = subprocess.run([go, "build", "-o", str(binary), str(SOURCE)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return binary


def test_step_ca_client_library_full_lifecycle(stepclient: Path, server, authority_dir: Path) -> None:  # noqa: F811
    cfg = json.loads((authority_dir / "config.json").read_text())
    port = cfg["address"].rsplit(":", 1)[1]
    kid = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())["kid"]
    out = subprocess.run(
        [str(stepclient), f"https://127.0.0.1:{port}", str(authority_dir / "certs" / "root_ca.crt"), "admin", kid,
         str(authority_dir / "secrets" / "password"), "svc.example.internal"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["revoke"] == "ok" and result["chain"] == 2 and result["provisioners"] == 3  # JWK, ACME, SSHPOP
    assert len({result["signed"], result["renewed"], result["rekeyed"]}) == 3
