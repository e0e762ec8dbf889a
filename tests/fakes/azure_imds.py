"""A fake Azure IMDS and tenant (OpenID discovery + JWKS) on loopback.

IMDS paths need `Metadata: true` (else 400, as Azure answers):
`/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...` gives the managed
identity's access token JSON (RS256, Azure's claim set with `tid`, `oid`, `xms_mirid`), and
`/metadata/instance?api-version=...` the compute block. The tenant side serves
`/<tenant>/.well-known/openid-configuration` and `/<tenant>/discovery/keys`; `down` makes
the tenant fail (outage tests).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


@dataclass
class AzureVM:
    """The VM and identity the fake describes."""

    tenant: str = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    subscription: str = "a1b2c3d4-0000-1111-2222-333344445555"
    group: str = "cirrus-rg"
    name: str = "vm-1"
    object_id: str = "9f1e2d3c-aaaa-bbbb-cccc-ddddeeeeffff"

    @property
    def mirid(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourcegroups/{self.group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )


class FakeAzure:
    """State: the VM, the tenant's signing key, the base URL (set when served)."""

    def __init__(self, vm: AzureVM | None = None) -> None:
        self.vm = vm or AzureVM()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "fake-azure-kid"
        self.base = ""
        self.down = False

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.vm.tenant}/"

    def discovery_url(self) -> str:
        return f"{self.base}/{self.vm.tenant}/.well-known/openid-configuration"

    def access_token(self, resource: str = "https://management.azure.com/", *, key: Any = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + 86399,
            "aio": "E2ZgYJg",
            "appid": "5e3b8f0a-1111-2222-3333-444455556666",
            "appidacr": "2",
            "idp": self.issuer,
            "oid": self.vm.object_id,
            "rh": "0.AAAA",
            "sub": self.vm.object_id,
            "tid": self.vm.tenant,
            "uti": "u1",
            "ver": "1.0",
            "xms_mirid": self.vm.mirid,
        }
        claims.update(overrides)
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})


def _handler(azure: FakeAzure) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            tenant = f"/{azure.vm.tenant}"
            if parts.path.startswith(tenant):
                if azure.down:
                    self._json(503, {"error": "temporarily_unavailable"})
                elif parts.path == f"{tenant}/.well-known/openid-configuration":
                    self._json(200, {"issuer": "https://sts.windows.net/{tenantid}/",
                                     "jwks_uri": f"{azure.base}{tenant}/discovery/keys",
                                     "token_endpoint": f"{azure.base}{tenant}/oauth2/token"})
                elif parts.path == f"{tenant}/discovery/keys":
                    jwk = json.loads(RSAAlgorithm.to_jwk(azure.key.public_key()))
                    jwk.update({"kid": azure.kid, "use": "sig"})
                    self._json(200, {"keys": [jwk]})
                else:
                    self._json(404, {})
                return
            if self.headers.get("Metadata") != "true":
                self._json(400, {"error": "Bad request. Required metadata header not specified"})
                return
            if parts.path == "/metadata/identity/oauth2/token":
                resource = query.get("resource", [""])[0]
                now = int(time.time())
                self._json(200, {
                    "access_token": azure.access_token(resource), "client_id": "5e3b8f0a",
                    "expires_in": "86399", "expires_on": str(now + 86399), "ext_expires_in": "86399",
                    "not_before": str(now), "resource": resource, "token_type": "Bearer",
                })
            elif parts.path == "/metadata/instance":
                v = azure.vm
                self._json(200, {"compute": {"name": v.name, "resourceGroupName": v.group,
                                             "subscriptionId": v.subscription, "vmId": "0f0e0d0c"}})
            else:
                self._json(404, {})

    return Handler


@contextlib.contextmanager
def serve_fake_azure(azure: FakeAzure | None = None) -> Iterator[tuple[FakeAzure, str]]:
    """Serve the fake on a free loopback port; yield it and its base URL."""
    azure = azure or FakeAzure()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(azure))
    azure.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield azure, azure.base
    finally:
        server.shutdown()
        server.server_close()
