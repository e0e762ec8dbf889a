"""End to end in local cloud mode: the Cloud Functions under Functions Framework, on Google's emulators.

`infra/cloud_local.py` runs as a subprocess (every function its own Functions Framework process on a
free loopback port) against the Firestore emulator, fake-gcs-server and the Pub/Sub emulator that
`infra/emulators.sh` started (CI: infra/test.sh exports FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST,
STORAGE_EMULATOR_HOST). The `cirrus` client commands get, renew (Bearer token: no TLS reaches a
function, so no mTLS) and revoke a certificate through the `ca_api` function; the records are then
read back from the Firestore emulator with the store API, a CRL is published the production way
(a tick on the crl_publish topic, pushed by the Pub/Sub emulator to the function), and the `ocsp`
function answers "revoked" for the revoked certificate and "good" for the other. Every run uses its
own Firestore collection prefix, bucket and topics, so runs never see each other's data.

The functions run with the deployed settings (infra/cloud_local.py): `ca_api` forwards signing to the
`issuer` function and could not sign itself; the certificates' CRL distribution point is the bucket's
public URL and their AIA OCSP URL the `ocsp` function, and both are followed from the leaf here.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from shared.clock import SystemClock
from shared.store.open import open_store

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infra" / "cloud_local.py"
EMULATOR_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")


def _require_emulators() -> None:
    missing = [v for v in EMULATOR_VARS if not os.environ.get(v)]
    if not missing:
        return
    message = f"{', '.join(missing)} not set: run `infra/emulators.sh start` and eval its env"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class CloudLocalRun:
    """A running `infra/cloud_local.py` and what it printed when ready."""

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any], lines: list[str]) -> None:
        self.proc = proc
        self.info = info
        self.lines = lines

    def url(self, function: str) -> str:
        return str(self.info["functions"][function])

    def logs(self) -> str:
        """Every function's log tail, for assertion messages."""
        out = ["cloud_local.py output:", *self.lines]
        for log in sorted(Path(self.info["logs"]).glob("*.log")):
            out.append(f"--- {log.name}")
            out.extend(log.read_text(errors="replace").splitlines()[-15:])
        return "\n".join(out)


@pytest.fixture
def cloud(authority_dir: Path, tmp_path: Path) -> Iterator[CloudLocalRun]:
    _require_emulators()
    run_id = secrets.token_hex(4)
    proc = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--dir",
            str(authority_dir),
            "--prefix",
            f"e2e{run_id}-",
            "--bucket",
            f"cirrus-e2e-{run_id}",
            "--project",
            "cirrus-e2e",
            "--log-dir",
            str(tmp_path / "logs"),
            "--no-start",  # CI started the emulators; never start (or stop) them from a test
        ],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("CLOUD_LOCAL_READY "):
                ready.put(json.loads(line.split(" ", 1)[1]))
        ready.put(None)

    threading.Thread(target=reader, daemon=True).start()
    try:
        info = ready.get(timeout=90)
    except queue.Empty:
        info = None
    if info is None:
        proc.kill()
        proc.wait(10)
        pytest.fail("local cloud mode did not become ready:\n" + "\n".join(lines))
    run = CloudLocalRun(proc, info, lines)
    try:
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def cirrus(*args: str) -> str:
    """Run a `cirrus` client command in a new process; return its stdout, fail with its stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"cirrus {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def pubsub(method: str, resource: str, body: dict[str, Any]) -> dict[str, Any]:
    url = f"http://{os.environ['PUBSUB_EMULATOR_HOST']}/v1/{resource}"
    status, data = http(method, url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert status == 200, f"{method} {resource}: {status} {data[:300]!r}"
    return json.loads(data or b"{}")  # type: ignore[no-any-return]


def serial_of(path: Path) -> str:
    return str(x509.load_pem_x509_certificates(path.read_bytes())[0].serial_number)


def aia_ocsp_url(cert: x509.Certificate) -> str:
    """The OCSP responder the certificate names (AIA), as a relying party finds it."""
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    (url,) = [d.access_location.value for d in aia if d.access_method == x509.AuthorityInformationAccessOID.OCSP]
    return str(url)


def cdp_url(cert: x509.Certificate) -> str:
    """The CRL distribution point the certificate names."""
    (point,) = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    (name,) = point.full_name or []
    return str(name.value)


def ocsp_status(run: CloudLocalRun, cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPResponse:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    url = aia_ocsp_url(cert)
    assert url == run.url("ocsp"), f"the AIA names {url}, not the ocsp function"
    status, body = http(
        "POST",
        url,
        request.public_bytes(serialization.Encoding.DER),
        {"Content-Type": "application/ocsp-request"},
    )
    assert status == 200, f"ocsp answered {status}: {body[:200]!r}\n{run.logs()}"
    resp = ocsp.load_der_ocsp_response(body)
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, run.logs()
    assert resp.serial_number == cert.serial_number
    # Signed by the issuing CA's key (or a delegate it certified).
    signer = issuer
    if resp.certificates:
        signer = resp.certificates[0]
        issuer.public_key().verify(  # type: ignore[call-arg, union-attr]
            signer.signature, signer.tbs_certificate_bytes, ec.ECDSA(signer.signature_hash_algorithm)
        )
    signer.public_key().verify(  # type: ignore[call-arg, union-attr]
        resp.signature, resp.tbs_response_bytes, ec.ECDSA(resp.signature_hash_algorithm)
    )
    return resp


def port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.timeout(300)
def test_get_renew_revoke_publish_ocsp(cloud: CloudLocalRun, authority_dir: Path, tmp_path: Path) -> None:
    ca_url = cloud.url("ca_api")
    root = authority_dir / "certs" / "root_ca.crt"
    issuer = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    assert ca_url.startswith("http://127.0.0.1:")

    # Listen to the lifecycle events topic from before the first issuance.
    events_sub = cloud.info["eventsTopic"].replace("/topics/", "/subscriptions/") + "-e2e"
    pubsub("PUT", events_sub, {"topic": cloud.info["eventsTopic"]})

    # --- get, renew (Bearer), revoke through the ca_api function, with the cirrus client.
    assert cirrus("health", "--ca-url", ca_url, "--root", str(root)).strip() == "ok"
    crt, key, renewed = tmp_path / "svc.crt", tmp_path / "svc.key", tmp_path / "renewed.crt"
    cirrus(
        "certificate",
        "svc.cloud.test",
        str(crt),
        str(key),
        "--san",
        "svc.cloud.test",
        "--ca-url",
        ca_url,
        "--dir",
        str(authority_dir),
    )
    cirrus(
        "renew", str(crt), str(key), "--bearer", "--out", str(renewed), "--ca-url", ca_url, "--dir", str(authority_dir)
    )
    first, second = serial_of(crt), serial_of(renewed)
    assert first != second
    leaf = x509.load_pem_x509_certificates(renewed.read_bytes())[0]
    assert (
        leaf.public_key().public_numbers()
        == x509.load_pem_x509_certificates(  # type: ignore[union-attr]
            crt.read_bytes()
        )[0]
        .public_key()
        .public_numbers()
    )  # renewal keeps the key
    cirrus(
        "revoke",
        second,
        "--reason-code",
        "1",
        "--reason",
        "e2e key compromise",
        "--ca-url",
        ca_url,
        "--dir",
        str(authority_dir),
    )
    # A second revocation of the same serial is refused: the record is really there.
    again = subprocess.run(
        [sys.executable, "-m", "shared.cli", "revoke", second, "--ca-url", ca_url, "--dir", str(authority_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "refused" in again.stderr, again.stderr

    # --- the records landed in the Firestore emulator, under this run's prefix (and not in SQLite).
    store = open_store(cloud.info["store"], clock=SystemClock())
    try:
        rec1, rec2 = store.get_certificate(first), store.get_certificate(second)
        assert rec1 is not None and rec2 is not None, cloud.logs()
        assert rec1.common_name == "svc.cloud.test" and rec1.renewed_from is None
        assert rec2.renewed_from == first and rec2.operation == "renew"
        assert rec1.endpoint_id == rec2.endpoint_id
        assert rec2.der == leaf.public_bytes(serialization.Encoding.DER)
        revocation = store.get_revocation(second)
        assert revocation is not None and revocation.reason_code == 1
        assert store.get_revocation(first) is None
    finally:
        store.close()
    other_prefix = open_store(
        "firestore:projects/cirrus-e2e/databases/(default)?prefix=elsewhere-", clock=SystemClock()
    )
    try:
        assert other_prefix.get_certificate(first) is None
    finally:
        other_prefix.close()
    sqlite_db = authority_dir / "db" / "cirrus.db"
    if sqlite_db.exists():
        local = open_store(f"sqlite:{sqlite_db}", clock=SystemClock())
        try:
            assert local.get_certificate(first) is None
        finally:
            local.close()

    # --- publish a CRL the production way: a tick on the crl_publish topic, pushed to the function.
    tick = cloud.info["tickTopics"]["crl_publish"]
    message = base64.b64encode(json.dumps({"job": "crl_publish"}).encode()).decode()
    pubsub("POST", tick + ":publish", {"messages": [{"data": message}]})
    crl: x509.CertificateRevocationList | None = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = http("GET", ca_url + "/crl")  # the ca_api function serves the published CRL
        if status == 200:
            crl = x509.load_der_x509_crl(body)
            break
        time.sleep(0.5)
    assert crl is not None, "no CRL published within 60 s\n" + cloud.logs()
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    revoked = crl.get_revoked_certificate_by_serial_number(int(second))
    assert revoked is not None
    assert crl.get_revoked_certificate_by_serial_number(int(first)) is None
    # ... and the object is in this run's fake-gcs-server bucket.
    gcs = os.environ["STORAGE_EMULATOR_HOST"].rstrip("/")
    status, listing = http("GET", f"{gcs}/storage/v1/b/{cloud.info['blobs'].removeprefix('gs://')}/o")
    assert status == 200
    assert any(o["name"].endswith(".crl") for o in json.loads(listing).get("items", [])), listing[:500]
    # ... and it is what the leaf's CRL distribution point fetches: the bucket's public URL + the object.
    cdp = cdp_url(leaf)
    assert cdp.startswith(cloud.info["bucketURL"] + "/crl/"), cdp
    status, body = http("GET", cdp)
    assert status == 200 and x509.load_der_x509_crl(body).get_revoked_certificate_by_serial_number(int(second)), cdp

    # --- the ocsp function answers from the published CRL.
    revoked_resp = ocsp_status(cloud, leaf, issuer)
    assert revoked_resp.certificate_status == ocsp.OCSPCertStatus.REVOKED, cloud.logs()
    assert revoked_resp.revocation_reason == x509.ReasonFlags.key_compromise
    first_cert = x509.load_pem_x509_certificates(crt.read_bytes())[0]
    assert ocsp_status(cloud, first_cert, issuer).certificate_status == ocsp.OCSPCertStatus.GOOD

    # --- the sweep function takes a CloudEvent (binary mode, as Eventarc delivers it).
    status, body = http(
        "POST",
        cloud.url("sweep") + "/",
        json.dumps({"message": {"data": message}}).encode(),
        {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": secrets.token_hex(8),
            "ce-source": f"//pubsub.googleapis.com/{cloud.info['tickTopics']['sweep']}",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        },
    )
    assert status == 200, f"sweep answered {status}: {body[:300]!r}\n{cloud.logs()}"

    # --- lifecycle events reached the Pub/Sub emulator: issued, renewed, revoked.
    types: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not {"issued", "renewed", "revoked"} <= {t.rsplit(".", 1)[-1] for t in types}:
        got = pubsub("POST", events_sub + ":pull", {"maxMessages": 50, "returnImmediately": True})
        msgs = got.get("receivedMessages", [])
        if msgs:
            pubsub("POST", events_sub + ":acknowledge", {"ackIds": [m["ackId"] for m in msgs]})
        types += [m["message"].get("attributes", {}).get("ce-type", "") for m in msgs]
        time.sleep(0.3 if not msgs else 0)
    assert {"dev.cirrus.certificate.issued", "dev.cirrus.certificate.renewed", "dev.cirrus.certificate.revoked"} <= set(
        types
    ), f"{types}\n{cloud.logs()}"

    # --- SIGTERM stops every function process local cloud mode started.
    cloud.proc.send_signal(signal.SIGTERM)
    assert cloud.proc.wait(30) == 0, cloud.logs()
    assert not [name for name, url in cloud.info["functions"].items() if port_open(url)]
