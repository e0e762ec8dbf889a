"""External account binding (RFC 8555 s.7.3.4, ACME-13).

Keys are created by an operator (`cirrus acme eab add`) and stored in the
document store with their provisioner; the HMAC key is shown once at creation.
A binding is a compare-and-set on the key document, so one key binds one
account even when two instances race. The MAC is compared in constant time.
The DocumentStore has no delete, so `remove` marks a key removed; a removed
key never verifies again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from shared.acme import jws
from shared.acme.problems import ACMEProblem
from shared.acme.repo import EAB_KEYS, Repo, ts
from shared.clock import Clock
from shared.store.base import DocumentStore

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@dataclass(frozen=True, slots=True)
class EABKey:
    """A key as listed (never with its secret)."""

    kid: str
    provisioner: str
    reference: str
    created_at: str
    bound_at: str | None
    account_id: str | None
    removed: bool


def _key(doc_id: str, data: dict[str, Any]) -> EABKey:
    return EABKey(
        kid=doc_id,
        provisioner=str(data.get("provisioner", "")),
        reference=str(data.get("reference", "")),
        created_at=str(data.get("createdAt", "")),
        bound_at=data.get("boundAt"),
        account_id=data.get("accountId"),
        removed=bool(data.get("removed", False)),
    )


def add_key(docs: DocumentStore, clock: Clock, *, provisioner: str, reference: str = "") -> tuple[str, str]:
    """Create a key; return `(kid, base64url HMAC key)` (the secret is shown only here)."""
    if reference and any(k.reference == reference and not k.removed for k in list_keys(docs, provisioner=provisioner)):
        raise ValueError(f"an EAB key with reference {reference!r} already exists")
    # Hex, not base64url: a kid starting with '-' read as an option by `cirrus acme eab remove KID`.
    kid = secrets.token_hex(16)
    secret = secrets.token_bytes(32)
    data = {
        "provisioner": provisioner,
        "reference": reference,
        "key": jws.b64e(secret),
        "createdAt": ts(clock.now()),
        "boundAt": None,
        "accountId": None,
        "removed": False,
    }
    if not docs.create_document(EAB_KEYS, kid, data):  # 128-bit collision: never in practice
        raise RuntimeError("EAB key id collision")
    return kid, jws.b64e(secret)


def list_keys(docs: DocumentStore, *, provisioner: str) -> list[EABKey]:
    """Keys of a provisioner, removed ones included (marked)."""
    return [_key(i, d) for i, d, _ in docs.find_documents(EAB_KEYS, "provisioner", provisioner, limit=10000)]


def remove_key(docs: DocumentStore, kid: str, *, provisioner: str | None = None) -> bool:
    """Mark a key removed; False if unknown (or of another provisioner)."""
    repo = Repo(docs)
    current = repo.get(EAB_KEYS, kid)
    if current is None or (provisioner and current.get("provisioner") != provisioner):
        return False

    def change(d: dict[str, Any]) -> dict[str, Any]:
        d["removed"] = True
        return d

    return repo.mutate(EAB_KEYS, kid, change) is not None


def verify_and_bind(
    repo: Repo,
    clock: Clock,
    binding: Any,
    *,
    outer_jwk: dict[str, Any],
    url: str,
    provisioner: str,
    account_id: str,
) -> dict[str, Any]:
    """Check the EAB JWS and bind its key to `account_id`; return the binding to echo."""
    if not isinstance(binding, dict):
        raise ACMEProblem("malformed", "externalAccountBinding must be a JWS object")
    inner = jws.parse(binding, allow_mac=True)
    header = inner.header
    if inner.alg not in _HASHES:
        raise ACMEProblem(
            "badSignatureAlgorithm",
            "EAB must use HS256, HS384 or HS512",
            extra={"algorithms": sorted(_HASHES)},
        )
    if "nonce" in header or "jwk" in header:
        raise ACMEProblem("malformed", "EAB JWS must not carry a nonce or jwk")
    if header.get("url") != url:
        raise ACMEProblem("unauthorized", "EAB url does not match the request URL")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ACMEProblem("malformed", "EAB JWS needs a kid")
    payload = jws.loads_strict(inner.payload, "EAB payload")
    if not isinstance(payload, dict) or jws.thumbprint(payload) != jws.thumbprint(outer_jwk):
        raise ACMEProblem("unauthorized", "EAB payload must be the account key")
    doc = repo.get(EAB_KEYS, kid)
    if doc is None or doc.get("provisioner") != provisioner or doc.get("removed"):
        raise ACMEProblem("unauthorized", "unknown external account key")
    secret = jws.b64d(doc.get("key", ""), "EAB key")
    mac = hmac.new(secret, inner.signing_input, _HASHES[inner.alg]).digest()
    if not hmac.compare_digest(mac, inner.signature):
        raise ACMEProblem("unauthorized", "EAB signature is invalid")

    def bind(d: dict[str, Any]) -> dict[str, Any]:
        if d.get("accountId") or d.get("removed"):
            raise ACMEProblem("unauthorized", "external account key is already bound")
        d["accountId"] = account_id
        d["boundAt"] = ts(clock.now())
        return d

    repo.mutate(EAB_KEYS, kid, bind)
    return binding
