"""A GCE VM's SSH host certificate, for real: `cirrus up` over TLS, the fake metadata server, ssh-keygen.

The VM fetches an identity token from its metadata server (as `step ssh certificate --host`
does), posts its host key to `/1.0/ssh/sign` over TLS trusting the CA's root, and `ssh-keygen -L`
shows a host certificate with the instance's name as key id and its internal DNS names as
principals; the same identity cannot get a second one (trust on first use).
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_bootstrap_gcp import gcp_provisioner
from tests.fakes.gcp_metadata import IDENTITY_PATH, FakeGoogle, serve_fake_google
from tests.served import cirrus_up
from tests.sshhelpers import cert_line, keygen

pytestmark = pytest.mark.interop


@pytest.fixture
def google() -> Iterator[tuple[FakeGoogle, str]]:
    with serve_fake_google() as served:
        yield served


@pytest.fixture
def ca(authority_dir: Path, tmp_path: Path, google: tuple[FakeGoogle, str]) -> Iterator[str]:
    provisioner = gcp_provisioner(google[1])
    with cirrus_up(authority_dir, tmp_path, provisioners=[provisioner], workers=1) as url:
        yield url


def identity_token(google_url: str, audience: str) -> str:
    query = urllib.parse.urlencode({"audience": audience, "format": "full", "licenses": "FALSE"})
    req = urllib.request.Request(f"{google_url}{IDENTITY_PATH}?{query}", headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode().strip()


def post(url: str, body: dict[str, object], root: Path) -> tuple[int, dict[str, object]]:
    context = ssl.create_default_context(cafile=str(root))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_gce_host_certificate_from_the_identity_token(ca: str, google, authority_dir: Path, tmp_path: Path) -> None:
    root = authority_dir / "certs" / "root_ca.crt"
    _, pub = keygen(tmp_path, "ssh_host_ed25519_key", "-t", "ed25519")
    audience = f"{ca}/1.0/ssh/sign#gcp/google"
    body = {"publicKey": pub, "ott": identity_token(google[1], audience), "certType": "host"}
    status, answer = post(f"{ca}/1.0/ssh/sign", body, root)
    assert status == 201, answer
    path = tmp_path / "ssh_host_ed25519_key-cert.pub"
    path.write_text(cert_line(str(answer["crt"])))
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert "ssh-ed25519-cert-v01@openssh.com host certificate" in shown
    assert 'Key ID: "web-1"' in shown
    assert "\n                web-1.c.cirrus-test.internal\n" in shown
    assert "\n                web-1.us-central1-a.c.cirrus-test.internal\n" in shown
    with urllib.request.urlopen(f"{ca}/ssh/roots", timeout=10, context=ssl.create_default_context(cafile=str(root))) as r:
        host_key = json.loads(r.read())["hostKey"][0]
    signing_ca = next(line for line in shown.splitlines() if "Signing CA:" in line)
    assert _fingerprint(host_key) in signing_ca  # signed by the CA's host key
    again = {"publicKey": pub, "ott": identity_token(google[1], audience)}
    status, answer = post(f"{ca}/1.0/ssh/sign", again, root)
    assert status == 401 and answer == {"status": 401, "message": "token already used"}


def _fingerprint(key_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
