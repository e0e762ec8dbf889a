"""What a cold Cloud Function instance loads: each function imports only what it uses.

A cold start pays for every module imported before the first answer (bench/cold_start.py measures
the time; see the README). These tests hold the win without timing anything: each one starts a new
interpreter, serves the function's first real request through the Functions Framework, and then
reads `sys.modules`. A module that should not be there is a regression a reviewer could not see in
a diff (an innocent top-level import three modules away brings it back).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from functions_framework import create_app

from shared.api import functions as handlers
from tests.helpers import mint_sign_token

REPO = Path(__file__).resolve().parents[2]
MAIN = str(REPO / "functions" / "main.py")

# Cloud SDKs: only the backend that uses one imports it, on its first operation. (The framework
# itself brings `google.cloud.functions`, its context types.)
SDKS = (
    "google.cloud.firestore", "google.cloud.firestore_v1", "google.cloud.storage", "google.cloud.kms",
    "google.cloud.pubsub", "google.api_core", "grpc", "google.auth", "requests", "boto3", "botocore", "pkcs11",
)  # fmt: skip
# The step-ca API and the issuing pipeline behind it (provisioners, templates, the signing path).
STEP_CA = ("shared.api.stepca", "shared.api.app", "shared.authority", "shared.templates", "shared.acme")
# What verifying a token needs (PyJWT, the provisioners, their claims and policies) and what `/revoke`
# runs: the composition root builds them on first use in a Cloud Function, so a function whose
# requests verify no token (the OCSP responder) never loads them.
TOKENS = ("jwt", "shared.provisioners.registry", "shared.provisioners.tokens", "shared.provisioners.base",
          "shared.claims", "shared.policy", "shared.revocation")  # fmt: skip

# What publishes the CRLs and the issued-serials index (crl_publish, `cirrus up`), not what reads them.
PUBLISHERS = ("shared.validation.publisher", "shared.validation.serial_index", "shared.validation.serial_index_segments")
# A plain `/sign` (no registration authority, no webhooks, no template) needs none of these: the RA's
# forwarding path, the webhook request bodies and certificate JSON, the template data and renderer,
# and the renew and revoke token verifiers.
NOT_FOR_A_PLAIN_SIGN = (
    "shared.authority_upstream", "shared.ra", "shared.webhooks.issuance", "shared.webhooks.body",
    "shared.webhooks.certificate", "shared.webhooks.client", "shared.templates.gojson", "shared.x509.templated",
    "shared.x509.template_data", "shared.linked", "shared.provisioners.renew_token",
)  # fmt: skip

_FIRST_REQUEST = """
import json, sys
from functions_framework import create_app
client = create_app(sys.argv[1], sys.argv[2], signature_type="http").test_client()
request = json.loads(sys.argv[3])
r = client.open(request["path"], method=request["method"], data=bytes.fromhex(request["body"]),
                headers=request["headers"])
sys.stdout.write(json.dumps({"status": r.status_code, "body": r.get_data().hex(), "modules": sorted(sys.modules)}))
"""


def _loaded(prefixes: tuple[str, ...], modules: list[str]) -> list[str]:
    """The modules named by `prefixes` (a package and its submodules; `grpc` is not `grpcio_status`)."""
    return [m for m in modules if m in prefixes or m.startswith(tuple(p + "." for p in prefixes))]


def _first_request(function: str, env: dict[str, str], *, method: str, path: str, body: bytes = b"",
                   headers: dict[str, str] | None = None) -> dict[str, object]:  # fmt: skip
    """Serve one request from a fresh interpreter; its answer and the modules it had loaded afterwards."""
    request = json.dumps({"method": method, "path": path, "body": body.hex(), "headers": headers or {}})
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("CIRRUS_") and not k.endswith("_EMULATOR_HOST")}
    run_env.update(env)
    run_env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", _FIRST_REQUEST, function, MAIN, request], cwd=REPO, env=run_env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_importing_the_entry_points_loads_no_sdk_and_no_step_ca_app() -> None:
    """`functions/main.py` is what every function imports first: the framework and thin handlers only."""
    code = "import json, sys, functions.main; sys.stdout.write(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    modules = json.loads(proc.stdout)
    assert "functions_framework" in modules and "shared.api.functions" in modules
    assert _loaded(SDKS, modules) == []
    assert _loaded((*STEP_CA, "shared.runtime", "shared.validation"), modules) == []


def test_reading_the_settings_loads_neither_the_alert_run_nor_x509() -> None:
    """Every function reads the settings on its first request; the alert windows they carry are not
    the sweep's alert run (which brings the event and store protocols and `cryptography.x509`)."""
    code = "import json, sys, shared.config; sys.stdout.write(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    modules = json.loads(proc.stdout)
    assert "shared.alert_windows" in modules
    assert _loaded(("shared.alerts", "shared.events", "shared.store", "cryptography.x509"), modules) == []


@pytest.fixture
def published(authority_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """An authority that issued one certificate and published its CRL; the OCSP request for it."""
    from cloudevents.conversion import to_structured
    from cloudevents.http import CloudEvent

    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cold.example.com")]))
            .sign(key, hashes.SHA256())
        )
        r = create_app("ca_api", MAIN).test_client().post("/1.0/sign", json={
            "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
            "ott": mint_sign_token(authority_dir, "cold.example.com")})  # fmt: skip
        assert r.status_code == 201, r.get_data(as_text=True)
        cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
        event = CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"},
                           {"message": {}})  # fmt: skip
        headers, body = to_structured(event)
        publish = create_app("crl_publish", MAIN, signature_type="cloudevent").test_client()
        assert publish.post("/", headers=headers, data=body).status_code == 200
    finally:
        handlers.reset()
    issuer = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return authority_dir, req.public_bytes(serialization.Encoding.DER)


def test_ocsp_first_answer_loads_neither_the_store_sdk_nor_the_step_ca_app(published: tuple[Path, bytes]) -> None:
    """The responder answers from the bucket: a Firestore store is configured but never opened.

    The store URL names a Firestore database and the emulator address is a closed port, so a
    responder that touched the store would fail (or at least load the SDK) here.
    """
    ca, der = published
    env = {
        "CIRRUS_CONFIG": str(ca / "config.json"),
        "CIRRUS_STORE": "firestore:projects/cold-start/databases/(default)",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
        "GOOGLE_CLOUD_PROJECT": "cold-start",
    }
    out = _first_request("ocsp", env, method="POST", path="/", body=der,
                         headers={"Content-Type": "application/ocsp-request"})  # fmt: skip
    assert out["status"] == 200
    answer = ocsp.load_der_ocsp_response(bytes.fromhex(str(out["body"])))
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    modules = list(out["modules"])  # type: ignore[call-overload]
    # The store is configured but never opened (not even its backend module imported), nor its SDK loaded.
    assert _loaded(("shared.store.firestore", "shared.store.sqlite", "sqlite3"), modules) == []
    assert _loaded(SDKS, modules) == []
    assert _loaded(STEP_CA, modules) == []
    # no token is verified here: the provisioners, PyJWT, the policies and the revoker stay unbuilt
    assert _loaded(TOKENS, modules) == []
    assert _loaded(("shared.alerts",), modules) == []
    # Answering reads published CRLs and the serial index: the publishers of both stay unloaded.
    assert _loaded(PUBLISHERS, modules) == []
    assert "shared.validation.serial_index_reader" in modules  # (the reader is what answers)


def test_ca_api_first_sign_loads_no_validation_authority_and_no_acme(authority_dir: Path) -> None:
    """A `/1.0/sign` on a cold ca_api loads the issuing pipeline, not the OCSP/CRL code, the ACME server,
    the other provisioner types or the template engine (no provisioner here has a template)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cold.example.com")]))
        .sign(key, hashes.SHA256())
    )
    body = json.dumps({"csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                       "ott": mint_sign_token(authority_dir, "cold.example.com")}).encode()  # fmt: skip
    out = _first_request("ca_api", {"CIRRUS_CONFIG": str(authority_dir / "config.json")}, method="POST",
                         path="/1.0/sign", body=body, headers={"Content-Type": "application/json"})  # fmt: skip
    assert out["status"] == 201, bytes.fromhex(str(out["body"]))[:300]
    assert b"BEGIN CERTIFICATE" in bytes.fromhex(str(out["body"]))
    modules = list(out["modules"])  # type: ignore[call-overload]
    assert "shared.authority" in modules
    assert _loaded(SDKS, modules) == []
    assert _loaded(("shared.acme", "shared.dashboard", "shared.ssh"), modules) == []
    # Only the blob naming of the root's ARL, read before signing (never sign under a revoked intermediate);
    # no CRL or OCSP building.
    assert set(_loaded(("shared.validation",), modules)) <= {"shared.validation", "shared.validation.partition"}
    # no provisioner has a template here: the template engine stays unloaded
    engine = ("shared.templates.parser", "shared.templates.execute", "shared.templates.sprig", "shared.templates.lexer")
    assert _loaded(engine, modules) == []
    others = ("shared.provisioners.oidc", "shared.provisioners.azure", "shared.provisioners.gcp", "shared.provisioners.aws")
    assert _loaded(others, modules) == []
    assert _loaded(NOT_FOR_A_PLAIN_SIGN, modules) == []
    assert _loaded(PUBLISHERS, modules) == []


def test_a_first_sign_builds_no_router(authority_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`/sign` is answered from the static routes; the Werkzeug router (its URL builders compiled per
    rule) is made only for a path with parameters."""
    from shared.api.stepca import url_map

    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    url_map.cache_clear()
    try:
        client = create_app("ca_api", MAIN).test_client()
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cold.example.com")]))
            .sign(key, hashes.SHA256())
        )
        r = client.post("/1.0/sign", json={"csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                                           "ott": mint_sign_token(authority_dir, "cold.example.com")})  # fmt: skip
        assert r.status_code == 201, r.get_data(as_text=True)
        assert url_map.cache_info().currsize == 0
        assert client.get("/1.0/sign").status_code == 405  # a wrong method still gets step-ca's answer
        assert client.get("/root/" + "00" * 32).status_code == 404  # a parameter: the router is built
        assert url_map.cache_info().currsize == 1
    finally:
        handlers.reset()
