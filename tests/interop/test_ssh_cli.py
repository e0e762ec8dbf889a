"""`cirrus ssh` against `cirrus up` over TLS: certificate, renew, config, krl, and clear errors."""

from __future__ import annotations

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
