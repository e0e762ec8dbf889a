"""`cirrus ssh` against `cirrus up` over TLS: certificate, renew, config, krl, and clear errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.interop.test_cli_session import cirrus, server  # noqa: F401 - the fixture
from tests.sshhelpers import keygen

pytestmark = pytest.mark.interop


def keygen_list(path: Path) -> str:
    return subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True).stdout


def test_ssh_commands_against_cirrus_up(server, authority_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    d = str(authority_dir)
    host_key, _ = keygen(tmp_path, "host", "-t", "ecdsa")
    cirrus("ssh", "certificate", "web1.internal", f"{host_key}.pub", "--host", "--principal", "web1.internal",
           "--principal", "10.0.0.5", "--dir", d)
    shown = keygen_list(tmp_path / "host-cert.pub")
    assert "host certificate" in shown and 'Key ID: "web1.internal"' in shown and "10.0.0.5" in shown
    serial = next(line.split()[1] for line in shown.splitlines() if "Serial:" in line)
    cirrus("ssh", "renew", str(tmp_path / "host-cert.pub"), str(host_key), "--dir", d)
    renewed = keygen_list(tmp_path / "host-cert.pub")
    assert "host certificate" in renewed and f"Serial: {serial}\n" not in renewed
    # The renewal joined the first certificate's endpoint.
    listing = cirrus("endpoints", "list", "--dir", d).stdout
    assert any("web1.internal" in line and line.split()[-2:] == ["2", "2"] for line in listing.splitlines()), listing

    user_key, _ = keygen(tmp_path, "id_ed25519", "-t", "ed25519")
    cirrus("ssh", "certificate", "alice@example.com", f"{user_key}.pub", "--principal", "alice", "--dir", d,
           "--not-after", "1h")
    shown = keygen_list(tmp_path / "id_ed25519-cert.pub")
    assert "user certificate" in shown and "permit-pty" in shown

    known, trusted = tmp_path / "known_hosts", tmp_path / "ca.pub"
    for _ in range(2):  # idempotent: the line is added once
        cirrus("ssh", "config", "--dir", d, "--known-hosts", str(known), "--user-ca-keys", str(trusted))
    lines = known.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("@cert-authority * ecdsa-sha2-nistp256 ")
    assert trusted.read_text().startswith("ecdsa-sha2-nistp256 ")
    krl = tmp_path / "krl"
    cirrus("ssh", "krl", "--dir", d, "--out", str(krl))
    q = subprocess.run(["ssh-keygen", "-Q", "-f", str(krl), str(tmp_path / "host-cert.pub")], capture_output=True)
    assert q.returncode == 0  # nothing revoked yet


def test_ssh_command_errors_are_one_line(authority_dir: Path, tmp_path: Path) -> None:
    out = cirrus("ssh", "certificate", "x", str(tmp_path / "missing.pub"), "--dir", str(authority_dir), check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 AAAA garbage\n")
    out = cirrus("ssh", "certificate", "x", str(bad), "--dir", str(authority_dir), check=False)
    assert out.returncode == 1 and "bad.pub" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = cirrus("ssh", "init", "--dir", str(authority_dir), check=False)
    assert out.returncode == 1 and "already has SSH CA keys" in out.stderr


SSH_TEMPLATE = """{
	"type": {{ toJson .Type }},
	"keyId": {{ toJson .KeyID }},
	"principals": {{ toJson (append .Principals (printf "%s-%s" .KeyID .Insecure.User.team)) }},
	"extensions": {"permit-pty": ""},
	"criticalOptions": {"force-command": {{ toJson .command }}}
}"""


@pytest.fixture
def templated_server(authority_dir: Path, request: pytest.FixtureRequest):
    """`cirrus up` whose JWK provisioner has an `options.ssh` template (set before the server starts)."""
    (authority_dir / "ssh-user.tpl").write_text(SSH_TEMPLATE)
    path = authority_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg["authority"]["provisioners"][0]["options"] = {
        "ssh": {"templateFile": "ssh-user.tpl", "templateData": {"command": "/usr/local/bin/jump"}}}
    path.write_text(json.dumps(cfg))
    return request.getfixturevalue("server")


def test_ssh_certificate_with_a_provisioner_template(templated_server, authority_dir: Path, tmp_path: Path) -> None:
    """The provisioner's SSH template (issue 15) changes principals, extensions and critical options of
    what `cirrus ssh certificate` gets; `--set` reaches the template as `.Insecure.User`."""
    user_key, _ = keygen(tmp_path, "id_ed25519", "-t", "ed25519")
    cirrus("ssh", "certificate", "alice", f"{user_key}.pub", "--dir", str(authority_dir), "--set", "team=dba")
    shown = keygen_list(tmp_path / "id_ed25519-cert.pub")
    assert "user certificate" in shown and 'Key ID: "alice"' in shown
    assert "Principals: \n                alice\n                alice-dba\n" in shown
    assert "force-command /usr/local/bin/jump" in shown
    extensions = shown.split("Extensions:")[1]
    assert "permit-pty" in extensions and "permit-agent-forwarding" not in extensions
    out = cirrus("ssh", "certificate", "alice", f"{user_key}.pub", "--dir", str(authority_dir), "--set", "team",
                 check=False)
    assert out.returncode == 1 and "expected KEY=VALUE" in out.stderr and len(out.stderr.strip().splitlines()) == 1
