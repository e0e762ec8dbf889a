"""Helpers for the hostile-input suites of the step API (issue 12)."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# The order of the P-256 group: (r, n - s) is the other valid ECDSA signature of the same input.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def malleable_twin(token: str) -> str:
    """The same ES256 JWS with its signature `(r, s)` replaced by `(r, n - s)`: it still verifies."""
    signing_input, _, sig = token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    r, s = raw[:32], int.from_bytes(raw[32:], "big")
    twin = signing_input + "." + b64url(r + (P256_N - s).to_bytes(32, "big"))
    assert twin != token
    return twin


def assert_step_error(r: Any, status: int, contains: str = "") -> None:
    """A 4xx answer in step-ca's error JSON: exactly `status` and `message`."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.get_json()
    assert set(body) == {"status", "message"} and body["status"] == status, body
    assert isinstance(body["message"], str) and body["message"]
    assert contains.lower() in body["message"].lower(), body["message"]


def certificate_count(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM certificates").fetchone()[0])
    finally:
        db.close()


def revocation_count(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM revocations").fetchone()[0])
    finally:
        db.close()


def renew_token(
    chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey, *, aud: str, **claims: Any
) -> str:
    """A Bearer renew token as `step ca renew --mtls=false` makes it, with claims overridable."""
    now = int(time.time())
    cn = chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    body: dict[str, Any] = {
        "iss": "step-ca-client/1.0",
        "sub": str(cn[0].value) if cn else "",
        "aud": aud,
        "nbf": now,
        "iat": now,
        "exp": now + 300,
    }
    body.update(claims)
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return jwt.encode(body, key, algorithm="ES256", headers={"x5cInsecure": x5c})


def raw_json(api: Any, path: str, text: str) -> Any:
    """POST a body given as exact JSON text (for what `json.dumps` would never write)."""
    return api.post(path, data=text.encode(), content_type="application/json")


def dumps(value: Any) -> str:
    return json.dumps(value)
