"""ACME state in a `DocumentStore`, shared by every instance.

Collections (one JSON document each):

| collection | id | holds |
|---|---|---|
| acme_accounts | account id | key (JWK), thumbprint, status, contact, eab |
| acme_account_keys | provisioner:thumbprint | accountId (unique-key index, create-if-absent) |
| acme_orders | order id | accountId, serial; under `o`: identifiers, authzs (with challenges), status, chains |
| acme_authzs | authz id | older layout only: identifier, status, token, challenges |
| acme_certs | cert id | older layout only: serial, PEM chains, accountId, identifiers |
| acme_replacements | serial | orderId (RFC 9773: one live replacement per cert) |
| acme_eab | key id | HMAC key, reference, binding |

Every change is a compare-and-set on the version read, retried a few times,
so two instances never lose each other's updates.

The store indexes every top-level string of a document for `find_documents`,
and each index entry is one more B-tree write on every create and on every
update that changes it. An order is written three or four times in its life
and looked up only by `accountId` and `serial`, so those two stay at the top
and everything else sits under `o` (`Repo` packs and unpacks, so handlers
see one flat order; flat orders of the older layout read as they are).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from shared.acme.nonces import PendingNonce
from shared.errors import Conflict
from shared.store.base import DocumentStore

ACCOUNTS = "acme_accounts"
ACCOUNT_KEYS = "acme_account_keys"
ORDERS = "acme_orders"
AUTHZS = "acme_authzs"
CERTS = "acme_certs"
REPLACEMENTS = "acme_replacements"
EAB_KEYS = "acme_eab"

_RETRIES = 8

#: Orders and authorizations are kept this long after they expire (for
#: support and audit), then the store's document sweep may delete them.
RETENTION = dt.timedelta(days=30)


def new_id() -> str:
    """A 128-bit random URL-safe identifier."""
    return secrets.token_urlsafe(16)


def new_token() -> str:
    """A challenge token: 256 random bits, base64url without padding (ACME-08)."""
    return secrets.token_urlsafe(32)


def ts(value: dt.datetime) -> str:
    """RFC 3339 UTC text, as ACME objects carry."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(text: str) -> dt.datetime:
    """Inverse of `ts` (also accepts offsets and fractions)."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


#: Order fields kept at the top level (looked up with `find_documents`).
ORDER_LOOKUPS = ("accountId", "serial")
_BODY = "o"


def pack(collection: str, data: dict[str, Any]) -> dict[str, Any]:
    """The stored form: for orders, lookup fields on top and the rest under `o`."""
    if collection != ORDERS:
        return data
    out = {k: data[k] for k in ORDER_LOOKUPS if k in data}
    out[_BODY] = {k: v for k, v in data.items() if k not in ORDER_LOOKUPS}
    return out


def unpack(collection: str, data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `pack` (a flat order of the older layout is returned as it is)."""
    body = data.get(_BODY) if collection == ORDERS else None
    if not isinstance(body, dict):
        return data
    return {**body, **{k: data[k] for k in ORDER_LOOKUPS if k in data}}


class Repo:
    """Small helpers over the document store."""

    def __init__(self, docs: DocumentStore) -> None:
        self.docs = docs

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """One document's data, or None."""
        found = self.docs.get_document(collection, doc_id)
        return unpack(collection, found[0]) if found else None

    def get_versioned(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """`(data, version)`, for a later `mutate(..., current=...)` that needs no second read."""
        found = self.docs.get_document(collection, doc_id)
        return (unpack(collection, found[0]), found[1]) if found else None

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_versioned` for several documents in one store round trip."""
        return [
            (unpack(collection, found[0]), found[1]) if found else None
            for (collection, _), found in zip(keys, self.docs.get_documents(keys), strict=True)
        ]

    def find(self, collection: str, field: str, value: str, *, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """`(id, data)` of documents whose top-level string `field` equals `value`."""
        found = self.docs.find_documents(collection, field, value, limit=limit)
        return [(doc_id, unpack(collection, data)) for doc_id, data, _ in found]

    def create(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
        nonce: PendingNonce | None = None,
    ) -> bool:
        """Create-if-absent; `expires_at` lets the store's sweep delete it later; `nonce` is spent by the write."""
        if nonce is not None:
            return nonce.create(self.docs, collection, doc_id, pack(collection, data), expires_at=expires_at)
        return self.docs.create_document(collection, doc_id, pack(collection, data), expires_at=expires_at)

    def mutate(
        self,
        collection: str,
        doc_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        current: tuple[dict[str, Any], int] | None = None,
        attempts: int = _RETRIES,
        nonce: PendingNonce | None = None,
    ) -> dict[str, Any] | None:
        """Apply `change` with compare-and-set; return the stored data (see `mutate_versioned`)."""
        found = self.mutate_versioned(collection, doc_id, change, current=current, attempts=attempts, nonce=nonce)
        return found[0] if found else None

    def mutate_versioned(
        self,
        collection: str,
        doc_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        current: tuple[dict[str, Any], int] | None = None,
        attempts: int = _RETRIES,
        nonce: PendingNonce | None = None,
    ) -> tuple[dict[str, Any], int] | None:
        """Apply `change` with compare-and-set; return the stored `(data, version)`.

        `change` gets a shallow copy and returns the new data, or None to
        leave the document as it is (then the current data is returned); it
        replaces nested values rather than editing them in place, so the
        caller's `current` stays as read. Returns None if the document does
        not exist.

        `current` is a `(data, version)` the caller has just read or written:
        the first attempt starts from it instead of reading again. That is
        safe because the write still compares the version, and a stale
        `current` only costs the usual re-read and retry. The returned
        version lets the next change skip its read too (a successful update
        adds exactly one to the version).

        `nonce`, if given, is spent by the write that succeeds (badNonce if
        it was used, and then nothing is written); a change that writes
        nothing leaves it for the server to spend.
        """
        found = current
        for _ in range(attempts):
            if found is None:
                found = self.get_versioned(collection, doc_id)
                if found is None:
                    return None
            data, version = found
            found = None
            new = change(dict(data))
            if new is None:
                return data, version
            packed = pack(collection, new)
            if nonce is not None:
                if nonce.update(self.docs, collection, doc_id, packed, expected_version=version):
                    return new, version + 1
            elif self.docs.update_document(collection, doc_id, packed, expected_version=version):
                return new, version + 1
        raise Conflict("the resource is being changed concurrently; retry")
