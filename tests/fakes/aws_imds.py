"""A fake EC2 instance metadata service (IMDSv2 and optionally v1) on loopback.

`PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` gives a session
token; `GET /latest/dynamic/instance-identity/document` and `.../signature` need it in
`X-aws-ec2-metadata-token` (or nothing, when `allow_v1`). The document is AWS's JSON
(pretty-printed as IMDS serves it); the signature is the base64 RSA PKCS#1 v1.5 SHA-256
signature over the document bytes, made with a test key whose self-signed certificate
`roots_pem` is what the provisioner's `iidRoots` points at.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


@dataclass
class EC2Instance:
    """The instance the fake describes."""

    account_id: str = "123456789012"
    instance_id: str = "i-0a1b2c3d4e5f67890"
    private_ip: str = "172.31.10.20"
    region: str = "us-west-2"
    pending: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2))

    def document(self) -> bytes:
        doc = {
            "accountId": self.account_id,
            "architecture": "x86_64",
            "availabilityZone": f"{self.region}a",
            "billingProducts": None,
            "devpayProductCodes": None,
            "marketplaceProductCodes": None,
            "imageId": "ami-0abcdef1234567890",
            "instanceId": self.instance_id,
            "instanceType": "t3.micro",
            "kernelId": None,
            "pendingTime": self.pending.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "privateIp": self.private_ip,
            "ramdiskId": None,
            "region": self.region,
            "version": "2017-09-30",
        }
        return json.dumps(doc, indent=2, separators=(",", " : ")).encode()


def make_signer_certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec2.amazonaws.com (test)")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


class FakeIMDS:
    """State: the instance, the signing key and certificate, the issued session tokens."""

    def __init__(self, instance: EC2Instance | None = None, *, allow_v1: bool = False) -> None:
        self.instance = instance or EC2Instance()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate = make_signer_certificate(self.key)
        self.allow_v1 = allow_v1
        self.sessions: set[str] = set()
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, had a session token)

    @property
    def roots_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def sign(self, document: bytes, key: Any = None) -> bytes:
        """The raw signature (re-signed with `key` for forged-document tests)."""
        return (key or self.key).sign(document, padding.PKCS1v15(), hashes.SHA256())


def _handler(imds: FakeIMDS) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            imds.requests.append(("PUT", self.path, False))
            if self.path != "/latest/api/token":
                self._send(404, b"")
                return
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                self._send(400, b"")
                return
            token = base64.b64encode(secrets.token_bytes(42)).decode()
            imds.sessions.add(token)
            self._send(200, token.encode())

        def do_GET(self) -> None:
            token = self.headers.get("X-aws-ec2-metadata-token")
            imds.requests.append(("GET", self.path, token is not None))
            if token is not None and token not in imds.sessions:
                self._send(401, b"")
                return
            if token is None and not imds.allow_v1:
                self._send(401, b"")
                return
            document = imds.instance.document()
            if self.path == "/latest/dynamic/instance-identity/document":
                self._send(200, document)
            elif self.path == "/latest/dynamic/instance-identity/signature":
                self._send(200, base64.b64encode(imds.sign(document)))
            else:
                self._send(404, b"")

    return Handler


@contextlib.contextmanager
def serve_fake_imds(imds: FakeIMDS | None = None) -> Iterator[tuple[FakeIMDS, str]]:
    """Serve the fake on a free loopback port; yield it and its base URL."""
    imds = imds or FakeIMDS()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(imds))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield imds, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
