"""Key ceremonies end to end: a root on an HSM, an intermediate in AWS KMS, an online CA that never
sees the root key, and a leaf that `openssl verify` accepts against the root (issue 16).

The HSM is SoftHSM2 behind the real PKCS#11 interface; AWS KMS is moto's server reached by boto3
through the same environment variables a deployment would use (tests/fakes/moto_kms.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main as cirrus
from shared.config import Settings
from shared.runtime import build_services
from tests.fakes.moto_kms import serve_moto_kms
from tests.fakes.softhsm import SoftHSM
from tests.helpers import make_csr, mint_sign_token


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with serve_moto_kms() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What an operator's environment gives boto3 (here pointed at the test server)."""
    for name, value in {
        "AWS_ENDPOINT_URL_KMS": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    return moto_endpoint


def _verify(root: Path, chain: Path, leaf_pem: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(leaf_pem)
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(root), "-untrusted", str(chain), str(leaf)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_hsm_root_kms_intermediate_install_and_issue(
    authority_dir: Path, softhsm_token: SoftHSM, aws_env: str, tmp_path: Path
) -> None:
    root_uri = softhsm_token.uri("ceremony-root")
    int_uri = "awskms:key-id=alias/ceremony-intermediate;region=us-east-1"
    root_crt, csr, int_crt = tmp_path / "root.crt", tmp_path / "int.csr", tmp_path / "int.crt"

    assert cirrus(["ca", "root", "--kms", root_uri, "--create", "EC-P384", "--name", "Ceremony",
                   "--out", str(root_crt)]) == 0  # fmt: skip
    assert cirrus(["ca", "intermediate-csr", "--kms", int_uri, "--create", "EC-P256", "--name", "Ceremony",
                   "--out", str(csr)]) == 0  # fmt: skip
    assert cirrus(["ca", "sign-intermediate", str(csr), "--root-kms", root_uri, "--root", str(root_crt),
                   "--out", str(int_crt), "--days", "365", "--permit-dns", "example.com"]) == 0  # fmt: skip
    assert cirrus(["ca", "install", "--dir", str(authority_dir), "--cert", str(int_crt), "--kms", int_uri,
                   "--root", str(root_crt)]) == 0  # fmt: skip

    config = json.loads((authority_dir / "config.json").read_text())
    assert config["key"] == int_uri
    inter = x509.load_pem_x509_certificate(int_crt.read_bytes())
    nc = inter.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical and nc.value.permitted_subtrees == [x509.DNSName("example.com")]
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    # The root key stays on the HSM and nothing of it reaches the online authority's folder.
    assert "pkcs11" not in (authority_dir / "config.json").read_text()

    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr_pem, _ = make_csr("app.example.com", ["app.example.com"])
        token = mint_sign_token(authority_dir, "app.example.com", ["app.example.com"])
        answer = api.post("/1.0/sign", json={"csr": csr_pem, "ott": token})
        assert answer.status_code == 201, answer.text
        out = _verify(root_crt, int_crt, answer.get_json()["crt"], tmp_path)
        assert out.returncode == 0, out.stderr
        roots = api.get("/roots").get_json()["crts"]
        assert x509.load_pem_x509_certificate(roots[0].encode()) == x509.load_pem_x509_certificate(root_crt.read_bytes())
    finally:
        services.close()


def test_bootstrap_with_kms_keys_serves_a_working_authority(aws_env: str, tmp_path: Path) -> None:
    """`cirrus ca bootstrap --kms`: the docs' cloud path, every key in a key manager."""
    folder = tmp_path / "deploy"
    uris = [f"awskms:key-id=alias/boot-{role};region=us-east-1" for role in ("root", "int", "ocsp")]
    assert cirrus(["ca", "bootstrap", "--dir", str(folder), "--root-kms", uris[0], "--intermediate-kms", uris[1],
                   "--ocsp-kms", uris[2], "--create", "EC-P256", "--name", "Boot"]) == 0  # fmt: skip
    config = json.loads((folder / "config.json").read_text())
    assert config["key"] == uris[1] and config["ocsp"]["responderKey"] == uris[2]
    assert not list((folder / "secrets").glob("*_key"))  # no key files: they are all in KMS
    services = build_services(Settings.load(folder / "config.json"))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr_pem, _ = make_csr("svc.internal", ["svc.internal"])
        answer = api.post("/1.0/sign", json={"csr": csr_pem, "ott": mint_sign_token(folder, "svc.internal", ["svc.internal"])})
        assert answer.status_code == 201, answer.text
        out = _verify(folder / "certs" / "root_ca.crt", folder / "certs" / "intermediate_ca.crt",
                      answer.get_json()["crt"], tmp_path)  # fmt: skip
        assert out.returncode == 0, out.stderr
    finally:
        services.close()


@pytest.mark.parametrize(
    "args, message",
    [
        (["ca", "root", "--kms", "softkms:path=/nonexistent/k", "--out", "/nonexistent/dir/root.crt"], "no such directory"),
        (["ca", "sign-intermediate", "missing.csr", "--root-kms", "softkms:path=/x", "--root", "r.crt", "--out", "o.crt"], "missing.csr"),
        (["ca", "install", "--dir", "/nonexistent", "--cert", "c.crt", "--kms", "awskms:key-id=alias/x"], "not an authority"),
        (["ca", "root", "--kms", "pkcs11:token=t;object=o?pin-value=1", "--out", "r.crt"], "must not carry the PIN"),
        (["ca", "root", "--kms", "yubikey:slot-id=9a", "--out", "r.crt"], "not supported"),
    ],
)
def test_ceremony_mistakes_are_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], run.stderr


def test_sign_intermediate_refuses_a_forged_csr_and_a_wrong_root_key(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from shared.ceremony import CeremonyError, make_root, sign_intermediate
    from shared.keys.base import KeyType
    from shared.keys.softkms import SoftKMS

    kms = SoftKMS(password=b"pw")
    now = dt.datetime.now(dt.UTC)
    root_signer = kms.create_key(f"softkms:path={tmp_path}/root", KeyType.EC_P256)
    root = make_root(root_signer, common_name="R", organization=None, days=30, now=now)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "I")])).sign(key, hashes.SHA256())
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # break the signature
    forged = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(CeremonyError, match="signature"):
        sign_intermediate(root_signer, root, forged, days=10, now=now)
    other = kms.create_key(f"softkms:path={tmp_path}/other", KeyType.EC_P256)
    with pytest.raises(CeremonyError, match="does not match"):
        sign_intermediate(other, root, csr, days=10, now=now)
    with pytest.raises(CeremonyError, match="outlast"):
        sign_intermediate(root_signer, root, csr, days=60, now=now)
    with pytest.raises(CeremonyError, match="path length"):
        sign_intermediate(root_signer, root, csr, days=10, now=now, path_length=1)
