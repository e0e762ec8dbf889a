"""A newcomer's mistakes, through the real `cirrus` entry point: one clear line, never a traceback.

Each case runs `python -m shared.cli` (the console script's `main`) in a subprocess with
this tree on PYTHONPATH, as a user would meet it, and asserts a non-zero exit with exactly
one line on stderr that says what is wrong. No CA is running: every mistake must be caught
before the CA is asked (the output-path cases prove it, since asking first would answer
"cannot reach the CA" instead).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[3]


def cirrus(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def one_line(out: subprocess.CompletedProcess[str], *, status: int = 1) -> str:
    lines = out.stderr.splitlines()
    assert out.returncode == status, (out.returncode, out.stdout, out.stderr)
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and lines[0].startswith(("cirrus ", "cirrus:")), out.stderr
    return lines[0]


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    crt, keyf = tmp / f"{name}.crt", tmp / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyf.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return crt, keyf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def work(tmp_path: Path, authority_dir: Path) -> Path:
    """A working folder with an authority in `ca/`, a cert/key pair, a stranger's key, odd files."""
    (tmp_path / "ca").exists() or (tmp_path / "ca").symlink_to(authority_dir)
    self_signed(tmp_path, "svc")
    self_signed(tmp_path, "other")
    (tmp_path / "empty").mkdir()
    (tmp_path / "badjson").mkdir()
    (tmp_path / "badjson" / "config.json").write_text("{")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    return tmp_path


# (arguments, text the one line must contain); {port} is a port nobody listens on.
CASES = [
    (["renew", "nosuch.crt", "svc.key", "--dir", "ca"], "cannot read certificate nosuch.crt: No such file"),
    (["renew", "nosuch.crt", "svc.key", "--dir", "ca", "--bearer"], "cannot read certificate nosuch.crt"),
    (["renew", "svc.crt", "nosuch.key", "--dir", "ca"], "cannot read private key nosuch.key"),
    (["renew", "svc.crt", "other.key", "--dir", "ca"], "the key other.key does not match the certificate svc.crt"),
    (["renew", "svc.crt", "other.key", "--dir", "ca", "--bearer"], "does not match the certificate svc.crt"),
    (["renew", "junk.pem", "svc.key", "--dir", "ca"], "junk.pem holds no PEM certificate"),
    (["renew", "svc.crt", "junk.pem", "--dir", "ca"], "junk.pem holds no PEM private key"),
    (["renew", "svc.crt", "svc.key", "--dir", "ca", "--out", "/nonexistent/x.crt"], "folder /nonexistent does not exist"),
    (["up", "--dir", "ca", "--address", "127.0.0.1:99999"], "port from 0 to 65535"),
    (["up", "--dir", "ca", "--address", "127.0.0.1:²"], "port from 0 to 65535"),
    (["up", "--dir", "empty"], "is not an authority folder"),
    (["up", "--dir", "nosuch"], "folder"),
    (["certificate", "b.example", "/nonexistent/b.crt", "b.key", "--dir", "ca"],
     "cannot write /nonexistent/b.crt: folder /nonexistent does not exist"),
    (["certificate", "b.example", "b.crt", "/nonexistent/b.key", "--dir", "ca"], "cannot write /nonexistent/b.key"),
    (["certificate", "b.example", "b.crt", "empty", "--dir", "ca"], "cannot write empty: it is a folder"),
    (["certificate", "b.example", "b.pem", "b.pem", "--dir", "ca"], "must be different files"),
    (["certificate", "b.example", "b.crt", "b.key", "--dir", "nosuch"], "folder nosuch does not exist"),
    (["certificate", "b.example", "b.crt", "b.key", "--dir", "ca", "--ca-url", "notaurl"], "--ca-url must look like"),
    (["certificate", "b.example", "b.crt", "b.key", "--dir", "ca", "--key", "junk.pem"], "is not a JSON Web Key"),
    (["health", "--dir", "ca", "--ca-url", "https://127.0.0.1:{port}"], "cannot reach the CA"),
    (["health", "--dir", "ca", "--root", "junk.pem"], "junk.pem holds no certificate to trust"),
    (["health", "--dir", "ca", "--root", "nosuch.crt"], "cannot read root certificate nosuch.crt"),
    (["health"], "give --ca-url or --dir"),
    (["health", "--dir", "empty"], "empty is not an authority folder"),
    (["health", "--dir", "badjson"], "config.json is not valid JSON"),
    (["endpoints", "list", "--dir", "badjson"], "is not valid JSON"),
    (["endpoints", "show", "nosuch", "--dir", "ca"], "no endpoint nosuch"),
    (["crl", "publish", "--dir", "empty"], "is not an authority folder"),
    (["crl", "show", "--dir", "ca"], "no CRL published yet"),
    (["acme", "eab", "list", "--dir", "ca", "--provisioner", "nosuch"], "no ACME provisioner named 'nosuch'"),
    (["acme", "eab", "remove", "kid1", "--dir", "ca", "--provisioner", "acme"], "no EAB key kid1"),
    (["revoke", "xyz", "--dir", "ca"], "serial must be a decimal number or 0x-prefixed hex"),
    (["revoke", "١٢", "--dir", "ca"], "serial must be a decimal number"),
    (["revoke", "12", "--dir", "ca", "--cert", "svc.crt"], "give both --cert and --cert-key"),
    (["revoke", "12", "--dir", "ca", "--cert", "svc.crt", "--cert-key", "other.key"], "does not match"),
    (["init", "--dir", "ca"], "refusing to overwrite"),
    (["init", "--dir", "svc.crt"], "svc.crt is not a folder"),
    (["ocsp", "check", "svc.crt", "--dir", "ca", "--url", "http://["], "invalid responder URL"),
]


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_mistake_is_one_line(work: Path, argv: list[str], expected: str) -> None:
    port = str(free_port())
    out = cirrus(*[a.replace("{port}", port) for a in argv], cwd=work)
    # `ocsp check` exits 3 for "no trustworthy answer" (0/1/2 are good/revoked/unknown, for scripts).
    assert expected in one_line(out, status=3 if argv[0] == "ocsp" else 1)


@pytest.mark.parametrize(
    "argv",
    [
        ["revoke", "12", "--dir", "ca", "--reason-code", "abc"],
        ["up", "--dir", "ca", "--workers", "x"],
        ["up", "--dir", "ca", "--workers", "0"],
        ["endpoints", "list", "--dir", "ca", "--limit", "-1"],
        ["crl", "show", "--dir", "ca", "--shard", "-1"],
        ["renew", "svc.crt"],
        ["nosuch"],
    ],
)
def test_bad_flag_is_one_line(work: Path, argv: list[str]) -> None:
    """argparse's usage errors, on one line with a pointer to --help; status 2 as argparse gives."""
    line = one_line(cirrus(*argv, cwd=work), status=2)
    assert "--help" in line


def test_no_output_is_left_behind_when_the_path_is_refused(work: Path) -> None:
    out = cirrus("certificate", "b.example", "/nonexistent/b.crt", "b.key", "--dir", "ca", cwd=work)
    one_line(out)
    assert not (work / "b.key").exists()
    assert not [p.name for p in work.iterdir() if p.name.endswith(".tmp")]


def test_up_refuses_a_store_folder_others_can_read(work: Path) -> None:
    """Issue 12 item 15: the store holds EAB and ACME nonce keys; `cirrus up` will not serve it from 0755."""
    db = work / "ca" / "db"
    db.chmod(0o755)
    cfg = json.loads((work / "ca" / "config.json").read_text())
    cfg["address"] = f"127.0.0.1:{free_port()}"
    (work / "ca" / "config.json").write_text(json.dumps(cfg))
    line = one_line(cirrus("up", "--dir", "ca", "--workers", "1", cwd=work, timeout=60))
    assert f"folder {db.resolve()} holds secrets but other users can open it (mode 0755)" in line
    assert "chmod 700" in line


def test_up_refuses_a_secret_file_others_can_read(work: Path) -> None:
    password = work / "ca" / "secrets" / "password"
    password.chmod(0o644)
    line = one_line(cirrus("up", "--dir", "ca", "--workers", "1", cwd=work, timeout=60))
    assert f"file {password.resolve()} holds secrets" in line and "chmod 600" in line
