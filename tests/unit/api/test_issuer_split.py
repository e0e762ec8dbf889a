"""The serverless split: a public instance with no signing key forwards to a private issuer."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.test import Client

from shared.acme.identifiers import Identifier
from shared.api.acme_mount import RemoteFinalizer, internal_acme
from shared.api.app import CirrusApp
from shared.cli.client import renew_bearer_token
from shared.config import Settings
from shared.errors import Forbidden
from shared.httpserver import WSGIServer
from shared.runtime import build_services
from tests.helpers import make_csr, mint_sign_token


@pytest.fixture
def split(authority_dir: Path):
    issuer_services = build_services(Settings.load(authority_dir / "config.json"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = WSGIServer(sock, CirrusApp(issuer_services, mounts={"/internal/acme": internal_acme}), None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = sock.getsockname()[1]
    cfg = json.loads((authority_dir / "config.json").read_text())
    # The public instance cannot open the key: it must never need it.
    public_settings = Settings.from_mapping(
        {**cfg, "key": "softkms:path=/nonexistent/key", "issuerURL": f"http://127.0.0.1:{port}"},
        base_dir=authority_dir,
    )
    public = build_services(public_settings)
    assert public.authority is None
    yield public, Client(CirrusApp(public))
    server.shutdown()
    public.close()
    issuer_services.close()


def test_sign_and_bearer_renew_go_through_the_issuer(split, authority_dir: Path, tmp_path: Path) -> None:
    public, api = split
    csr, key = make_csr("ra.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "ra.example.com")})
    assert r.status_code == 201, r.text
    body = r.get_json()
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    assert public.store.get_certificate(str(cert.serial_number)) is not None  # same store, written by the issuer
    # Refusals keep their status and step-ca JSON through the hop.
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "other.example.com")})
    assert r.status_code == 403 and set(r.get_json()) == {"status", "message"}
    crt, keyf = tmp_path / "c.pem", tmp_path / "k.pem"
    crt.write_text("".join(body["certChain"]))
    keyf.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    token = renew_bearer_token(crt, keyf, "https://127.0.0.1:9443/1.0/renew")
    r = api.post("/1.0/renew", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text


def test_acme_finalize_through_the_issuer(split) -> None:
    public, _ = split
    finalizer = RemoteFinalizer(link=public.issuer_link, revoker=public.revoker, provisioners=public.provisioners)
    csr_pem, _ = make_csr("acme-ra.example.com", ["acme-ra.example.com"])
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    chain = finalizer.issue(
        csr, [Identifier("dns", "acme-ra.example.com")], provisioner="acme", account_id="a1",
        replaces=None, not_before=None, not_after=None,
    )
    assert chain.leaf.subject.rfc4514_string() == "CN=acme-ra.example.com" and len(chain.chain) == 1
    record = public.store.get_certificate(chain.serial)
    assert record is not None and record.provisioner.type == "ACME"
    with pytest.raises(Forbidden):
        finalizer.issue(csr, [Identifier("dns", "acme-ra.example.com")], provisioner="nope", account_id="a1",
                        replaces=None, not_before=None, not_after=None)


def test_issuer_unreachable_is_503(authority_dir: Path) -> None:
    cfg = json.loads((authority_dir / "config.json").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    public = build_services(Settings.from_mapping({**cfg, "issuerURL": f"http://127.0.0.1:{port}"}, base_dir=authority_dir))
    api = Client(CirrusApp(public))
    csr, _ = make_csr("down.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "down.example.com")})
    assert r.status_code == 503 and r.get_json()["status"] == 503 and "Traceback" not in r.text
    public.close()


def test_intermediates_of_a_forwarding_function_follow_the_active_generation(
    split, authority_dir: Path, tmp_path: Path
) -> None:
    """The public function has no rotation of its own: it reads the bucket copy, as OCSP does."""
    from shared.cli import main as cirrus_main
    from tests.e2e.test_rotation import new_intermediate

    public, api = split
    base = (authority_dir / "certs" / "intermediate_ca.crt").read_text()
    assert api.get("/intermediates").get_json()["crts"] == [base]
    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    assert cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt),
                        "--kms", new_uri]) == 0  # fmt: skip
    assert cirrus_main(["ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt)]) == 0
    view = public.extras.get("rotation_forwarding_view")
    if view is not None:
        view.recheck = 0  # the next read, not the next 5 s
    assert api.get("/intermediates").get_json()["crts"] == [new_crt.read_text()]
    assert api.get("/intermediates.pem").get_data(as_text=True) == new_crt.read_text()
    # And the issuer's answers name the same intermediate.
    csr, _ = make_csr("gen2.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "gen2.example.com")})
    assert r.status_code == 201, r.text
    assert r.get_json()["ca"] == new_crt.read_text()
