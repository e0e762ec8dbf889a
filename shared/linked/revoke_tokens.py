"""Revoke tokens: how a central Cirrus revokes, at a linked Cirrus, certificates the linked one issued.

The operator of the linked instance runs `cirrus linked revoke-token` there and gives the
printed token to the central (`cirrus linked add ... --revoke-url URL --revoke-token-file F`).
The central then sends `POST /revoke` (step-ca's body: serial, reasonCode, reason, passive)
with `Authorization: Bearer <token>`; the linked instance revokes a certificate it issued as
`POST /revoke` with a one-time token would (the same record, event, CRL and OCSP).

The token is `rvk-<12 hex>.<43 characters>`: the first part names the document to read (one
lookup), the second is 256 random bits. Only the SHA-256 of the whole token is kept (a token
with that much entropy needs no slow hash, and a leaked store grants nothing), compared in
constant time, also when no document was found.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any, Protocol

from shared.errors import Unauthorized

COLLECTION = "revoke_tokens"
_TOKEN = re.compile(r"Bearer (rvk-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})\Z")


class TokenDocuments(Protocol):
    """The document roles revoke tokens use."""

    def create_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expires_at: dt.datetime | None = None
    ) -> bool:
        """Create if absent."""
        ...

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        ...


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_revoke_token(documents: TokenDocuments, *, label: str, now: dt.datetime) -> str:
    """A new revoke token (printed once); the store keeps its hash under its id."""
    while True:
        token_id = "rvk-" + secrets.token_hex(6)
        token = f"{token_id}.{secrets.token_urlsafe(32)}"
        if documents.create_document(COLLECTION, token_id, {"tokenHash": _hash(token), "label": label[:200],
                                                             "createdAt": now.isoformat()}):  # fmt: skip
            return token


def is_revoke_token(authorization: str | None) -> bool:
    """Does this `Authorization` header carry something shaped like a revoke token?"""
    return bool(authorization) and str(authorization).startswith("Bearer rvk-")


def authenticate_revoke_token(documents: TokenDocuments, authorization: str) -> str:
    """The id of the revoke token this `Authorization` header carries.

    Raises:
        Unauthorized: malformed, unknown or withdrawn.
    """
    match = _TOKEN.match(authorization or "")
    found = documents.get_document(COLLECTION, match.group(1)) if match else None
    expected = str(found[0].get("tokenHash", "")) if found else "0" * 64
    presented = _hash(authorization[len("Bearer "):]) if match else ""
    same = hmac.compare_digest(expected, presented)
    if not (match and found and same):
        raise Unauthorized("invalid revoke token")
    return match.group(1)
