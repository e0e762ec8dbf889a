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

Withdrawing (`cirrus linked revoke-token --withdraw ID`) marks the document withdrawn by a
compare-and-set rather than deleting it: the token is refused from then on (401, as an unknown
one), and the record of who held it and when it was withdrawn stays for `--list`. Rotating is
issuing a new token, giving it to the central (`cirrus linked add` there), then withdrawing the
old one. Tokens are listed by their `kind` field (`find_documents`, as linked authorities are).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.errors import Conflict, NotFound, Unauthorized

COLLECTION = "revoke_tokens"
KIND = "revokeToken"
#: Listed at most (a linked instance has a handful).
MAX_LISTED = 1000
_TOKEN = re.compile(r"Bearer (rvk-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})\Z")
TOKEN_ID = re.compile(r"rvk-[0-9a-f]{12}\Z")


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

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int) -> bool:
        """Compare-and-set replace."""
        ...

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Documents whose top-level field equals value."""
        ...


@dataclass(frozen=True, slots=True)
class RevokeTokenInfo:
    """What `--list` shows of a token (never its hash)."""

    id: str
    label: str
    created_at: str
    withdrawn_at: str | None

    def as_json(self) -> dict[str, Any]:
        """The `--list --json` object."""
        return {"id": self.id, "label": self.label, "createdAt": self.created_at, "withdrawnAt": self.withdrawn_at}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_revoke_token(documents: TokenDocuments, *, label: str, now: dt.datetime) -> str:
    """A new revoke token (printed once); the store keeps its hash under its id."""
    while True:
        token_id = "rvk-" + secrets.token_hex(6)
        token = f"{token_id}.{secrets.token_urlsafe(32)}"
        data = {"kind": KIND, "tokenHash": _hash(token), "label": label[:200], "createdAt": now.isoformat()}
        if documents.create_document(COLLECTION, token_id, data):
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
    if not (match and found and same) or (found and found[0].get("withdrawnAt")):
        raise Unauthorized("invalid revoke token")
    return match.group(1)


def list_revoke_tokens(documents: TokenDocuments) -> list[RevokeTokenInfo]:
    """Every revoke token this instance issued, withdrawn ones included, by id."""
    found = documents.find_documents(COLLECTION, "kind", KIND, limit=MAX_LISTED)
    return [RevokeTokenInfo(id=doc_id, label=str(data.get("label", "")), created_at=str(data.get("createdAt", "")),
                            withdrawn_at=str(data["withdrawnAt"]) if data.get("withdrawnAt") else None)
            for doc_id, data, _ in found]  # fmt: skip


def withdraw_revoke_token(documents: TokenDocuments, token_id: str, *, now: dt.datetime,
                          attempts: int = 5) -> RevokeTokenInfo:  # fmt: skip
    """Withdraw a token: refused from now on. Returns it (already withdrawn: unchanged, with that time).

    Raises:
        NotFound: no token with that id (or not shaped like one).
        Conflict: the document kept changing under us.
    """
    if not TOKEN_ID.match(token_id):
        raise NotFound(f"no revoke token {token_id[:40]!r} (ids look like rvk-0123456789ab)")
    for _ in range(attempts):
        found = documents.get_document(COLLECTION, token_id)
        if found is None:
            raise NotFound(f"no revoke token {token_id}")
        data, version = found
        if not data.get("withdrawnAt"):
            data = {**data, "withdrawnAt": now.isoformat()}
            if not documents.update_document(COLLECTION, token_id, data, expected_version=version):
                continue
        return RevokeTokenInfo(id=token_id, label=str(data.get("label", "")), created_at=str(data.get("createdAt", "")),
                               withdrawn_at=str(data["withdrawnAt"]))  # fmt: skip
    raise Conflict(f"revoke token {token_id} kept changing; try again")
