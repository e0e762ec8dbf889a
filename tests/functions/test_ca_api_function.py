"""The `ca_api` Cloud Function through the Functions Framework test client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from functions_framework import create_app

from shared.api import functions as handlers
from tests.helpers import mint_sign_token

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def client(authority_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    app = create_app("ca_api", MAIN)
    yield app.test_client()
    handlers.reset()


def test_health_and_roots(client) -> None:
    r = client.get("/health")
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}
    r = client.get("/1.0/roots")
    assert r.status_code == 201
    assert r.get_json()["crts"][0].startswith("-----BEGIN CERTIFICATE-----")


def test_sign_through_function(client, authority_dir: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fn.example.com")]))
        .sign(key, hashes.SHA256())
    )
    token = mint_sign_token(authority_dir, "fn.example.com", ["fn.example.com"])
    r = client.post(
        "/1.0/sign",
        json={"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": token},
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    body = r.get_json()
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    assert cert.subject.rfc4514_string() == "CN=fn.example.com"
    assert len(body["certChain"]) == 2
    # The same token again is a replay.
    r = client.post(
        "/1.0/sign",
        json={"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": token},
    )
    assert r.status_code == 401
    assert r.get_json() == {"status": 401, "message": "token already used"}


def test_sweep_event(authority_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    quiet = {"purgedTokens": 0, "purgedDocuments": 0, "alerts": 0, "redelivered": 0, "provisionersChanged": 0}
    # The first sweep records the provisioners (one provisioner.changed), later ones find no change.
    assert handlers.sweep(None) == {**quiet, "provisionersChanged": 1}
    assert handlers.sweep(None) == quiet
    # A redeploy with one provisioner fewer: the next sweep of a new instance raises one event.
    config = json.loads((authority_dir / "config.json").read_text())
    gone = config["authority"]["provisioners"].pop()
    (authority_dir / "config.json").write_text(json.dumps(config))
    handlers.reset()
    assert handlers.sweep(None) == {**quiet, "provisionersChanged": 1}
    assert handlers.sweep(None) == quiet
    events = [e for e in handlers.services().store.list_events(limit=1000) if e.type.endswith("provisioner.changed")]
    assert len(events) == 2 and [p["name"] for p in events[1].data["removed"]] == [gone["name"]]
    handlers.reset()


def test_ocsp_and_crl_publish_functions(authority_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """crl_publish (CloudEvent) publishes; the ocsp function answers from what it published."""
    from cloudevents.http import CloudEvent
    from cryptography.x509 import ocsp

    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    api = create_app("ca_api", MAIN).test_client()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "va.example.com")]))
        .sign(key, hashes.SHA256())
    )
    r = api.post("/1.0/sign", json={"csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                                    "ott": mint_sign_token(authority_dir, "va.example.com")})
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    issuer = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())

    publish = create_app("crl_publish", MAIN, signature_type="cloudevent").test_client()
    event = CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"}, {"message": {}})
    from cloudevents.conversion import to_structured

    headers, body = to_structured(event)
    assert publish.post("/", headers=headers, data=body).status_code == 200

    ocsp_client = create_app("ocsp", MAIN).test_client()
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    resp = ocsp_client.post("/ocsp", data=req.public_bytes(serialization.Encoding.DER), content_type="application/ocsp-request")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/ocsp-response"
    parsed = ocsp.load_der_ocsp_response(resp.data)
    assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
    handlers.reset()


def test_ocsp_function_answers_at_its_root(authority_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployed function's URL is the responder: POST / and GET /<base64> work, not only /ocsp."""
    import base64

    from cryptography.x509 import ocsp

    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    req = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        b"\0" * 20, b"\0" * 20, 12345, hashes.SHA1()
    ).build().public_bytes(serialization.Encoding.DER)
    client = create_app("ocsp", MAIN).test_client()
    for r in (
        client.post("/", data=req, content_type="application/ocsp-request"),
        client.get("/" + base64.b64encode(req).decode()),
    ):
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/ocsp-response"
        assert ocsp.load_der_ocsp_response(r.data).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    handlers.reset()
