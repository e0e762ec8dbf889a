"""A small OpenID provider on loopback: discovery, JWKS, an authorization endpoint, a token endpoint.

The authorization endpoint approves at once (the "user" is `FakeIssuer.user`) and redirects to the
client's `redirect_uri` with a code; the token endpoint checks the code, the redirect URI, the client
and the PKCE verifier (S256, RFC 7636) and returns an ES256 ID token carrying the request's `nonce`.
`mint` makes ID tokens directly for server-side tests.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


class FakeIssuer:
    """State: the signing key, the signed-in user, pending codes."""

    def __init__(self, client_id: str = "cirrus-cli", client_secret: str = "public-secret") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "oidc-key-1"
        self.base = ""
        self.client_id = client_id
        self.client_secret = client_secret
        self.user: dict[str, Any] = {"sub": "1001", "email": "alice@example.com", "email_verified": True,
                                     "groups": ["engineers"]}
        self.codes: dict[str, dict[str, str]] = {}
        self.jwks_requests = 0

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return {"keys": [jwk]}

    def mint(self, *, key: Any = None, kid: str | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.base, "aud": self.client_id, "azp": self.client_id, "iat": now,
                                  "exp": now + 3600, "nonce": secrets.token_hex(16), **self.user}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key or self.key, algorithm="ES256", headers={"kid": kid or self.kid})


def _handler(issuer: FakeIssuer) -> type[BaseHTTPRequestHandler]:
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
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                b = issuer.base
                self._json(200, {"issuer": b, "authorization_endpoint": f"{b}/authorize",
                                 "token_endpoint": f"{b}/token", "jwks_uri": f"{b}/jwks",
                                 "id_token_signing_alg_values_supported": ["ES256"],
                                 "code_challenge_methods_supported": ["S256"]})
            elif parts.path == "/jwks":
                issuer.jwks_requests += 1
                self._json(200, issuer.jwks())
            elif parts.path == "/authorize":
                if (q.get("response_type") != "code" or q.get("client_id") != issuer.client_id
                        or q.get("code_challenge_method") != "S256" or not q.get("code_challenge")
                        or "openid" not in q.get("scope", "").split()):
                    self._json(400, {"error": "invalid_request"})
                    return
                code = secrets.token_urlsafe(16)
                issuer.codes[code] = q
                target = q["redirect_uri"] + "?" + urlencode({"code": code, "state": q.get("state", "")})
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path != "/token" or form.get("grant_type") != "authorization_code":
                self._json(400, {"error": "unsupported_grant_type"})
                return
            pending = issuer.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (pending is None or pending["redirect_uri"] != form.get("redirect_uri")
                    or form.get("client_id") != issuer.client_id or challenge != pending["code_challenge"]):
                self._json(400, {"error": "invalid_grant"})
                return
            token = issuer.mint(nonce=pending.get("nonce"))
            self._json(200, {"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": token})

    return Handler


@contextlib.contextmanager
def serve_fake_issuer(issuer: FakeIssuer | None = None) -> Iterator[tuple[FakeIssuer, str]]:
    """Serve the issuer on a free loopback port; yield it and its base URL (its `iss`)."""
    issuer = issuer or FakeIssuer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    issuer.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer, issuer.base
    finally:
        server.shutdown()
        server.server_close()
