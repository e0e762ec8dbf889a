"""A fake GCE metadata server and Google key server on loopback.

Serves the real paths with the real header rules (requests without
`Metadata-Flavor: Google` get 403; answers carry `Metadata-Flavor: Google`):
`/computeMetadata/v1/instance/service-accounts/default/identity?audience=..&format=full`
(an RS256 identity token in Google's format, signed with a test key),
`/computeMetadata/v1/instance/{id,name,zone,hostname}`, `/computeMetadata/v1/project/project-id`,
and Google's JWKS at `/oauth2/v3/certs`. `jwks_down` makes the key server fail (outage tests).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"


@dataclass
class GCEInstance:
    """The VM the fake metadata server describes."""

    instance_id: str = "5193865438101457309"
    instance_name: str = "web-1"
    project_id: str = "cirrus-test"
    project_number: int = 123456789012
    zone: str = "us-central1-a"
    service_account: str = "1122334455667788990"
    email: str = "vm@cirrus-test.iam.gserviceaccount.com"
    created: int = field(default_factory=lambda: int(time.time()) - 60)


class FakeGoogle:
    """State behind the fake: the instance, the signing key, and failure switches."""

    def __init__(self, instance: GCEInstance | None = None) -> None:
        self.instance = instance or GCEInstance()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "fake-google-key-1"
        self.jwks_down = False
        self.jwks_requests = 0
        self.identity_requests: list[dict[str, list[str]]] = []

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def identity_claims(self, audience: str, **overrides: Any) -> dict[str, Any]:
        i = self.instance
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "azp": i.service_account,
            "email": i.email,
            "email_verified": True,
            "exp": now + 3600,
            "iat": now,
            "iss": "https://accounts.google.com",
            "sub": i.service_account,
            "google": {
                "compute_engine": {
                    "instance_creation_timestamp": i.created,
                    "instance_id": i.instance_id,
                    "instance_name": i.instance_name,
                    "project_id": i.project_id,
                    "project_number": i.project_number,
                    "zone": i.zone,
                }
            },
        }
        claims.update(overrides)
        return claims

    def identity_token(self, audience: str, *, key: Any = None, kid: str | None = None, **overrides: Any) -> str:
        """A token as the metadata server returns it (optionally re-signed or altered, for bad-input tests)."""
        return jwt.encode(
            self.identity_claims(audience, **overrides),
            key if key is not None else self.key,
            algorithm="RS256",
            headers={"kid": kid or self.kid, "typ": "JWT"},
        )


def _handler(google: FakeGoogle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/text", **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Metadata-Flavor", "Google")
            for k, v in headers.items():
                self.send_header(k.replace("_", "-"), v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/oauth2/v3/certs":
                google.jwks_requests += 1
                if google.jwks_down:
                    self._send(503, b"unavailable")
                    return
                self._send(200, json.dumps(google.jwks()).encode(), "application/json", Cache_Control="max-age=300")
                return
            if parts.path == "/":
                self._send(200, b"computeMetadata/\n")
                return
            if self.headers.get("Metadata-Flavor") != "Google":
                self._send(403, b"Missing required header: Metadata-Flavor")
                return
            i = google.instance
            if parts.path == IDENTITY_PATH:
                query = parse_qs(parts.query)
                google.identity_requests.append(query)
                audience = query.get("audience", [""])[0]
                if not audience:
                    self._send(400, b"non-empty audience parameter required")
                    return
                self._send(200, google.identity_token(audience).encode())
                return
            values = {
                "/computeMetadata/v1/instance/id": i.instance_id,
                "/computeMetadata/v1/instance/name": i.instance_name,
                "/computeMetadata/v1/instance/zone": f"projects/{i.project_number}/zones/{i.zone}",
                "/computeMetadata/v1/instance/hostname": f"{i.instance_name}.{i.zone}.c.{i.project_id}.internal",
                "/computeMetadata/v1/project/project-id": i.project_id,
            }
            if parts.path in values:
                self._send(200, values[parts.path].encode())
                return
            self._send(404, b"not found")

    return Handler


@contextlib.contextmanager
def serve_fake_google(google: FakeGoogle | None = None) -> Iterator[tuple[FakeGoogle, str]]:
    """Serve the fake on a free loopback port; yield it and its base URL (`http://127.0.0.1:PORT`)."""
    google = google or FakeGoogle()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(google))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield google, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
