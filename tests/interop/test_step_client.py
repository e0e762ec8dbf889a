"""step-ca's own Go client library (smallstep/certificates `ca`, Debian's 0.19.0 sources) against Cirrus.

The program in `stepclient/` does what `step ca token/certificate/renew/rekey/revoke` do with
that library: fetch `/provisioners` and the provisioner's `encryptedKey`, decrypt it with the
password, mint a token, bootstrap trust from the token's root fingerprint, sign, renew and rekey
over mTLS, revoke over mTLS. It is built in GOPATH mode from Debian's packaged sources
(golang-go, golang-github-smallstep-certificates-dev; infra/test.sh installs them).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from tests.e2e.test_cloud_local import CloudLocalRun, cirrus, cloud, http, pubsub  # noqa: F401  (local cloud mode)
from tests.interop.test_cli_session import server  # noqa: F401  (the `cirrus up` fixture)

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SOURCE = Path(__file__).parent / "stepclient" / "main.go"
GOCODE = "/usr/share/gocode"


@pytest.fixture(scope="session")
def stepclient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not Path(GOCODE, "src/github.com/smallstep/certificates/ca").is_dir():
        pytest.fail("needs golang-go and golang-github-smallstep-certificates-dev (infra/test.sh installs them)")
    work = tmp_path_factory.mktemp("stepclient")
    binary = work / "stepclient"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{work}:{GOCODE}",
        "GOCACHE": str(work / "cache"),
        "GOFLAGS": "",
    }
    out = subprocess.run([go, "build", "-o", str(binary), str(SOURCE)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return binary


def test_step_ca_client_library_full_lifecycle(stepclient: Path, server, authority_dir: Path) -> None:  # noqa: F811
    cfg = json.loads((authority_dir / "config.json").read_text())
    port = cfg["address"].rsplit(":", 1)[1]
    kid = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())["kid"]
    out = subprocess.run(
        [str(stepclient), f"https://127.0.0.1:{port}", str(authority_dir / "certs" / "root_ca.crt"), "admin", kid,
         str(authority_dir / "secrets" / "password"), "svc.example.internal"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["revoke"] == "ok" and result["chain"] == 2 and result["provisioners"] == 3  # JWK, ACME, SSHPOP
    assert len({result["signed"], result["renewed"], result["rekeyed"]}) == 3


# ----------------------------------------------------------------------------- the deployed address
#
# docs/deploy.md section 4 tells users: `step ca bootstrap --ca-url <ca_url> --fingerprint <root>` then
# `step ca certificate`. Shown here against local cloud mode's ca_api function (Functions Framework,
# Firestore/Pub/Sub/GCS emulators, the issuer split on) at the deployed path: a bare origin, no path,
# behind a TLS front end as Google's is. step-ca's client trusts only the bootstrapped root for TLS to
# the CA, so the front end's certificate decides: one the CA issued (a custom domain behind a load
# balancer with a certificate from Cirrus) works unchanged; a foreign one (run.app's Google-issued
# certificate) needs its root appended to the bootstrapped root file, as docs/deploy.md says.


class _Forward(BaseHTTPRequestHandler):
    """One request to the TLS front end, passed to the function as is (what Google's front end does)."""

    server: _Front

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        req = urllib.request.Request(self.server.backend + self.path, data=body, method=self.command)
        for name in ("Content-Type", "Authorization", "Accept"):
            if self.headers.get(name):
                req.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, headers, data = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, data = exc.code, exc.headers, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", headers.get("Content-Type", "application/octet-stream"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Front(ThreadingHTTPServer):
    backend = ""


@contextlib.contextmanager
def tls_front(backend: str, chain_pem: Path, key_pem: Path) -> Iterator[str]:
    """An HTTPS origin (no path) in front of `backend`, serving `chain_pem`; yields its URL."""
    front = _Front(("127.0.0.1", 0), _Forward)
    front.backend = backend
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_pem, key_pem)
    front.socket = context.wrap_socket(front.socket, server_side=True)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{front.server_address[1]}"
    finally:
        front.shutdown()
        front.server_close()


def foreign_certificate(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A front-end certificate for 127.0.0.1 from a CA that is not Cirrus (Google's stand-in): chain, key, its root."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Front End Root")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    chain, key_file, root = tmp_path / "front.crt", tmp_path / "front.key", tmp_path / "front-root.crt"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    root.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return chain, key_file, root


def run_deployed_client(
    stepclient: Path, ca_url: str, authority_dir: Path, root_out: Path, extra_roots: Path | None = None
) -> subprocess.CompletedProcess[str]:
    root = x509.load_pem_x509_certificate((authority_dir / "certs" / "root_ca.crt").read_bytes())
    fingerprint = root.fingerprint(hashes.SHA256()).hex()
    kid = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())["kid"]
    args = [str(stepclient), "deployed", ca_url, fingerprint, "admin", kid, str(authority_dir / "secrets" / "password"),
            "svc.deployed.test", str(root_out)]
    if extra_roots is not None:
        args.append(str(extra_roots))
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(300)
def test_step_bootstrap_and_certificate_against_the_deployed_address(
    stepclient: Path,
    cloud: CloudLocalRun,  # noqa: F811
    authority_dir: Path,
    tmp_path: Path,
) -> None:
    ca_api = cloud.url("ca_api")
    assert urlsplit(ca_api).path == "", "local ca_api answers at a bare origin, as the deployed run.app address"

    # A custom domain whose load balancer serves a certificate from the CA itself: step works unchanged.
    lb_crt, lb_key = tmp_path / "lb.crt", tmp_path / "lb.key"
    cirrus("certificate", "127.0.0.1", str(lb_crt), str(lb_key), "--ca-url", ca_api, "--dir", str(authority_dir))
    with tls_front(ca_api, lb_crt, lb_key) as ca_url:
        out = run_deployed_client(stepclient, ca_url, authority_dir, tmp_path / "root_ca.crt")
    assert out.returncode == 0, out.stderr + cloud.logs()
    result = json.loads(out.stdout)
    assert result["chain"] == 2 and result["dnsNames"] == ["svc.deployed.test"]

    # The leaf's CDP is the bucket object crl_publish writes, its AIA OCSP the ocsp function.
    (cdp,) = result["crl"]
    assert cdp.startswith(cloud.info["bucketURL"] + "/crl/"), cdp
    assert result["ocsp"] == [cloud.url("ocsp")]
    tick = cloud.info["tickTopics"]["crl_publish"]
    message = base64.b64encode(json.dumps({"job": "crl_publish"}).encode()).decode()
    pubsub("POST", tick + ":publish", {"messages": [{"data": message}]})
    deadline, crl = time.monotonic() + 60, None
    while crl is None and time.monotonic() < deadline:
        status, body = http("GET", cdp)
        crl = x509.load_der_x509_crl(body) if status == 200 else None
        time.sleep(0 if crl else 0.5)
    assert crl is not None, f"nothing at the CDP {cdp}\n{cloud.logs()}"
    intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    assert crl.is_signature_valid(intermediate.public_key())  # type: ignore[arg-type]
    leaf = x509.load_pem_x509_certificate(result["leafPEM"].encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, intermediate, hashes.SHA1()).build()
    status, body = http("POST", result["ocsp"][0], request.public_bytes(serialization.Encoding.DER),
                        {"Content-Type": "application/ocsp-request"})
    assert status == 200, body[:200]
    assert ocsp.load_der_ocsp_response(body).certificate_status == ocsp.OCSPCertStatus.GOOD

    # run.app: Google's certificate is not the CA's. Bootstrapped alone, step refuses the connection;
    # with the front end's root appended to the bootstrapped root file (docs/deploy.md), it works.
    chain, key, front_root = foreign_certificate(tmp_path)
    with tls_front(ca_api, chain, key) as ca_url:
        refused = run_deployed_client(stepclient, ca_url, authority_dir, tmp_path / "root_only.crt")
        bundled = run_deployed_client(stepclient, ca_url, authority_dir, tmp_path / "bundle.crt", front_root)
    assert refused.returncode != 0 and "certificate signed by unknown authority" in refused.stderr, refused.stderr
    assert bundled.returncode == 0, bundled.stderr + cloud.logs()
    assert json.loads(bundled.stdout)["chain"] == 2
