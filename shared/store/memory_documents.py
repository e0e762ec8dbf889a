"""The memory store's documents (ACME accounts, orders, nonces ...): JSON text with a version.

Split from `shared.store.memory` by concern. Documents are held as the compact JSON text the
durable backends store, so every read returns a fresh object (a caller mutating it cannot
change the stored document) and `find_documents` applies the same predicate as every backend
(`codec.field_matches`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from shared.clock import Clock
from shared.errors import TokenAlreadyUsed
from shared.model import TokenClaim
from shared.store import codec


class MemoryDocuments:
    """Document create / compare-and-set / find / expiry sweep, and the token-claiming writes."""

    _lock: threading.RLock
    _clock: Clock
    _claims: dict[tuple[str, str], int]
    # (collection, id) -> (JSON text, version, expires_at in epoch us or None)
    _documents: dict[tuple[str, str], tuple[str, int, int | None]]

    def create_document(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create a document at version 1 if absent."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        with self._lock:
            if (collection, doc_id) in self._documents:
                return False
            self._documents[(collection, doc_id)] = (text, 1, expires_us)
            return True

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return a fresh copy of `(data, version)` or None."""
        with self._lock:
            found = self._documents.get((collection, doc_id))
        if found is None:
            return None
        return codec.load_json_object(found[0]), found[1]

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_document` for each key, in order."""
        return [self.get_document(collection, doc_id) for collection, doc_id in keys]

    def update_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int
    ) -> bool:
        """Replace the document if its version is still `expected_version`."""
        text = codec.dump_json(data, "document data")
        with self._lock:
            found = self._documents.get((collection, doc_id))
            if found is None or found[1] != expected_version:
                return False
            self._documents[(collection, doc_id)] = (text, found[1] + 1, found[2])
            return True

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Return documents whose top-level string `field` equals `value`, by id."""
        if limit <= 0:
            return []
        with self._lock:
            candidates = sorted(
                (doc_id, text, version)
                for (coll, doc_id), (text, version, _) in self._documents.items()
                if coll == collection
            )
        out: list[tuple[str, dict[str, Any], int]] = []
        for doc_id, text, version in candidates:
            data = codec.load_json_object(text)
            if codec.field_matches(data, field, value):
                out.append((doc_id, data, version))
                if len(out) >= limit:
                    break
        return out

    def purge_expired_documents(self, now: dt.datetime | None = None) -> int:
        """Delete documents whose `expires_at` is before `now` (default: the clock)."""
        now_us = codec.to_epoch_us(now if now is not None else self._clock.now(), "now")
        with self._lock:
            stale = [
                k for k, (_, _, exp) in self._documents.items() if exp is not None and exp < now_us
            ]
            for k in stale:
                del self._documents[k]
            return len(stale)

    def create_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        claim: TokenClaim,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create a document at version 1 and claim the token, both or neither."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        claim_us = codec.to_epoch_us(claim.expires_at, "expires_at")
        with self._lock:
            if (claim.namespace, claim.key) in self._claims:
                raise TokenAlreadyUsed()
            if (collection, doc_id) in self._documents:
                return False
            self._claims[(claim.namespace, claim.key)] = claim_us
            self._documents[(collection, doc_id)] = (text, 1, expires_us)
            return True

    def update_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expected_version: int,
        claim: TokenClaim,
    ) -> bool:
        """Compare-and-set the document and claim the token, both or neither."""
        text = codec.dump_json(data, "document data")
        claim_us = codec.to_epoch_us(claim.expires_at, "expires_at")
        with self._lock:
            if (claim.namespace, claim.key) in self._claims:
                raise TokenAlreadyUsed()
            found = self._documents.get((collection, doc_id))
            if found is None or found[1] != expected_version:
                return False
            self._claims[(claim.namespace, claim.key)] = claim_us
            self._documents[(collection, doc_id)] = (text, found[1] + 1, found[2])
            return True
