"""The SSH routes through the `ca_api` Cloud Function (Functions Framework test client)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from functions_framework import create_app

from shared.api import functions as handlers
from shared.ssh.certificate import parse_certificate
from tests.sshhelpers import keygen, ssh_token

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def client(authority_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    yield create_app("ca_api", MAIN).test_client()
    handlers.reset()


def test_ssh_sign_and_roots_through_the_function(client, authority_dir: Path, tmp_path: Path) -> None:
    roots = client.get("/1.0/ssh/roots")
    assert roots.status_code == 200 and set(roots.get_json()) == {"userKey", "hostKey"}
    _, pub = keygen(tmp_path, "k", "-t", "ed25519")
    token = ssh_token(authority_dir, "alice", {"certType": "user", "principals": ["alice"]})
    r = client.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": token})
    assert r.status_code == 201, r.get_data(as_text=True)
    cert = parse_certificate(base64.b64decode(r.get_json()["crt"]))
    assert cert.principals == ("alice",) and cert.signature_key == base64.b64decode(roots.get_json()["userKey"][0])
    r = client.post("/ssh/sign", json={"publicKey": pub, "ott": token})
    assert r.status_code == 401 and r.get_json() == {"status": 401, "message": "token already used"}
