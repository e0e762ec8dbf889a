"""SSH certificates signed by a Cloud KMS key: one AsymmetricSign call, read by ssh-keygen.

The real `google-cloud-kms` client talks gRPC to tests/fakes/kms_server.py; the
certificate is built by hand and only its signed bytes go to KMS.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from shared.keys.cloudkms import CloudKMS
from shared.ssh.certificate import DEFAULT_USER_EXTENSIONS, USER_CERT, build_and_sign
from shared.ssh.keys import ssh_key_uris
from shared.ssh.wire import parse_authorized_key
from tests.fakes.kms_server import insecure_client, serve_fake_kms

RING = "projects/cirrus-test/locations/europe-west1/keyRings/ssh"


@pytest.mark.parametrize("algorithm", ["EC_SIGN_P256_SHA256", "EC_SIGN_P384_SHA384", "RSA_SIGN_PKCS1_2048_SHA256"])
def test_cloudkms_key_signs_ssh_certificates(algorithm: str, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(tmp_path / "k")], check=True)
    key = parse_authorized_key((tmp_path / "k.pub").read_text())
    with serve_fake_kms() as (fake, address):
        uri = "cloudkms:" + fake.add_key(f"{RING}/cryptoKeys/user-{algorithm.lower()}", algorithm)
        # The Functions' environment names the key; it wins over the file's block.
        uris = ssh_key_uris({"sshUserKey": uri, "sshHostKey": uri, "ssh": {"userKey": "x", "hostKey": "y"}}, tmp_path)
        assert uris is not None and uris.user == uri
        signer = CloudKMS(client=insecure_client(address)).signer(uris.user)
        before = fake.calls["AsymmetricSign"]
        now = int(time.time())
        cert = build_and_sign(key=key, serial=42, cert_type=USER_CERT, key_id="kms", principals=("alice",),
                              valid_after=now, valid_before=now + 600, critical_options={},
                              extensions=DEFAULT_USER_EXTENSIONS, ca=signer)
        assert fake.calls["AsymmetricSign"] == before + 1
    assert cert.signed_by(signer.public_key())
    (tmp_path / "k-cert.pub").write_text(cert.authorized_line() + "\n")
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(tmp_path / "k-cert.pub")], capture_output=True, text=True,
                           check=True).stdout
    assert 'Key ID: "kms"' in shown and "Serial: 42" in shown
