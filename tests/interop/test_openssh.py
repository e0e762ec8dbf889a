"""Cirrus SSH certificates against real OpenSSH (Debian openssh-server / openssh-client).

The test starts its own `sshd` on loopback on a free port, as the current
user (root in CI), with its own host key, a host certificate from Cirrus,
`TrustedUserCAKeys` from `/ssh/roots` and a KRL from Cirrus's revocations.
`ssh` then logs in with user certificates from `/ssh/sign` and checks the
host certificate through an `@cert-authority` line with
`StrictHostKeyChecking yes`.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.ssh.certificate import parse_certificate
from shared.ssh.config_templates import known_hosts_line
from tests.sshhelpers import cert_line, keygen, ssh_token

pytestmark = pytest.mark.interop

SSHD_BIN = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SSHD:
    """A running sshd and the files it uses."""

    def __init__(self, directory: Path, port: int, process: subprocess.Popen[bytes], krl: Path) -> None:
        self.directory = directory
        self.port = port
        self.process = process
        self.krl = krl


@pytest.fixture
def sshd(api, authority_dir: Path, tmp_path: Path) -> Iterator[SSHD]:
    if os.geteuid() != 0:
        pytest.fail("the OpenSSH test runs sshd as root (as CI does)")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    d = tmp_path / "sshd"
    d.mkdir()
    host_key, host_pub = keygen(d, "ssh_host_ecdsa_key", "-t", "ecdsa")
    token = ssh_token(authority_dir, "localhost", {"certType": "host", "principals": ["localhost", "127.0.0.1"]})
    r = api.post("/ssh/sign", json={"publicKey": host_pub, "ott": token, "certType": "host"})
    assert r.status_code == 201, r.text
    Path(f"{host_key}-cert.pub").write_text(cert_line(r.get_json()["crt"]))
    roots = api.get("/ssh/roots").get_json()
    user_ca = base64.b64decode(roots["userKey"][0])
    (d / "ca.pub").write_text(f"{_type_of(user_ca)} {roots['userKey'][0]}\n")
    krl = d / "revoked.krl"
    krl.write_bytes(_krl(api))
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
HostCertificate {host_key}-cert.pub
PidFile {d}/sshd.pid
UsePAM no
StrictModes no
AuthorizedKeysFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
TrustedUserCAKeys {d}/ca.pub
RevokedKeys {krl}
LogLevel VERBOSE
"""
    )
    subprocess.run([SSHD_BIN, "-t", "-f", str(config)], check=True)
    proc = subprocess.Popen([SSHD_BIN, "-D", "-e", "-f", str(config)], stderr=open(d / "sshd.log", "wb"))  # noqa: SIM115
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError((d / "sshd.log").read_text()) from None
            time.sleep(0.05)
    try:
        yield SSHD(d, port, proc, krl)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _type_of(blob: bytes) -> str:
    return blob[4 : 4 + int.from_bytes(blob[:4], "big")].decode()


def _krl(api) -> bytes:
    from shared.api.ssh import _authority

    services = api.application.services
    return _authority(services).krl(version=int(time.time()))


def _user_cert(api, authority_dir: Path, directory: Path, name: str, principals: list[str]) -> Path:
    key, pub = keygen(directory, name, "-t", "ed25519")
    token = ssh_token(authority_dir, f"{name}@example.com", {"certType": "user", "principals": principals})
    r = api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": token})
    assert r.status_code == 201, r.text
    Path(f"{key}-cert.pub").write_text(cert_line(r.get_json()["crt"]))
    return key


def _ssh(server: SSHD, key: Path, known_hosts: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh", "-F", "none", "-p", str(server.port), "-i", str(key),
            "-o", f"CertificateFile={key}-cert.pub", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
            "root@127.0.0.1", *command,
        ],
        capture_output=True, text=True, timeout=30,
    )


def _known_hosts(api, directory: Path) -> Path:
    roots = api.get("/ssh/roots").get_json()
    path = directory / "known_hosts"
    path.write_text(known_hosts_line(base64.b64decode(roots["hostKey"][0])))
    return path


def test_user_certificate_logs_in_and_host_certificate_is_trusted(api, authority_dir: Path, sshd: SSHD) -> None:
    key = _user_cert(api, authority_dir, sshd.directory, "alice", ["root", "alice"])
    known = _known_hosts(api, sshd.directory)
    done = _ssh(sshd, key, known, "echo", "cirrus-ok")
    assert done.returncode == 0, done.stderr + (sshd.directory / "sshd.log").read_text()
    assert done.stdout.strip() == "cirrus-ok"
    # The same login with a known_hosts line for another CA is refused by the client: the host
    # certificate, not luck, is what made the first one pass.
    other_ca, _ = keygen(sshd.directory, "other_ca", "-t", "ed25519")
    wrong = sshd.directory / "wrong_known_hosts"
    wrong.write_text(f"@cert-authority * {Path(f'{other_ca}.pub').read_text()}")
    refused = _ssh(sshd, key, wrong, "true")
    assert refused.returncode != 0 and "Host key verification failed" in refused.stderr


def test_certificate_without_the_login_principal_is_refused(api, authority_dir: Path, sshd: SSHD) -> None:
    key = _user_cert(api, authority_dir, sshd.directory, "bob", ["bob"])
    done = _ssh(sshd, key, _known_hosts(api, sshd.directory), "true")
    assert done.returncode == 255 and "Permission denied" in done.stderr


def test_certificate_on_the_krl_is_refused(api, authority_dir: Path, sshd: SSHD) -> None:
    key = _user_cert(api, authority_dir, sshd.directory, "carol", ["root"])
    known = _known_hosts(api, sshd.directory)
    assert _ssh(sshd, key, known, "true").returncode == 0
    crt = Path(f"{key}-cert.pub").read_text().split()[1]
    serial = str(parse_certificate(base64.b64decode(crt)).serial)
    from tests.helpers import mint_token, sign_claims

    token = mint_token(authority_dir, sign_claims(serial, None, op="ssh/revoke"))
    r = api.post("/ssh/revoke", json={"serial": serial, "ott": token, "passive": True})
    assert r.status_code == 200, r.text
    sshd.krl.write_bytes(_krl(api))
    done = _ssh(sshd, key, known, "true")
    assert done.returncode == 255 and "Permission denied" in done.stderr
    assert "revoked" in (sshd.directory / "sshd.log").read_text().lower()


def test_ssh_keygen_lists_the_host_certificate_fields(sshd: SSHD) -> None:
    shown = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(sshd.directory / "ssh_host_ecdsa_key-cert.pub")],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "ecdsa-sha2-nistp256-cert-v01@openssh.com host certificate" in shown
    assert 'Key ID: "localhost"' in shown
    assert "\n                localhost\n                127.0.0.1\n" in shown
    assert "Extensions: (none)" in shown
