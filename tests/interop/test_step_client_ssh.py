"""step-ca's own Go client library signs SSH certificates over Cirrus's API.

`stepclient_ssh/` uses smallstep/certificates `ca` (Debian's 0.19.0 sources) as `step ssh
certificate` does: the provisioner's `SSHToken`, `SSHRoots`, `SSHSign` for a user and a host
key, then golang.org/x/crypto/ssh's `CertChecker` against the CA keys, `SSHCheckHost`,
`SSHConfig`, and a refusal. Built in GOPATH mode, sharing the build cache of `stepclient`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.interop.test_cli_session import server  # noqa: F401  (the `cirrus up` fixture)
from tests.interop.test_step_client import GOCODE, stepclient  # noqa: F401  (its build cache is reused)

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SOURCE = Path(__file__).parent / "stepclient_ssh" / "main.go"


@pytest.fixture(scope="session")
def stepclient_ssh(stepclient: Path) -> Path:  # noqa: F811
    go = shutil.which("go")
    assert go is not None
    work = stepclient.parent
    binary = work / "stepclient_ssh"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{work}:{GOCODE}", "GOCACHE": str(work / "cache"),
           "GOFLAGS": ""}
    out = subprocess.run([go, "build", "-o", str(binary), str(SOURCE)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return binary


def test_step_client_library_signs_ssh_certificates(stepclient_ssh: Path, server, authority_dir: Path) -> None:  # noqa: F811
    cfg = json.loads((authority_dir / "config.json").read_text())
    port = cfg["address"].rsplit(":", 1)[1]
    kid = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())["kid"]
    out = subprocess.run(
        [str(stepclient_ssh), f"https://127.0.0.1:{port}", str(authority_dir / "certs" / "root_ca.crt"), "admin", kid,
         str(authority_dir / "secrets" / "password")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["userPrincipals"] == ["alice", "ops"] and result["userKeyId"] == "alice@example.com"
    assert result["userExtensions"] == 5 and result["userSerial"] > 0
    assert result["hostValidity"] == 720 * 3600 + 60
    assert result["checkHost"] is True and result["userTemplates"] == 4
    assert "principals does not match" in result["refused"]
