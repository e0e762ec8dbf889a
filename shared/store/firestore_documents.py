"""The Firestore store's documents role (ACME accounts, orders, nonces ...): create-if-absent and compare-and-set.

Split from `shared.store.firestore` by concern; the document layout (`idx` field index,
version `v`, `expireAt` for TTL) is `firestore_docs`. Compare-and-set documents carry a
version; an update is sent with the server's `update_time` as precondition, so a
concurrent writer makes it fail instead of being overwritten. A write that also claims a
token is one batch (both or neither).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from typing import Any

from shared.errors import TokenAlreadyUsed
from shared.model import TokenClaim
from shared.retry import Attempt
from shared.store import codec
from shared.store import firestore_docs as docs
from shared.store.firestore_connection import FirestoreConnection

_ESCAPE = re.compile("~(7E|2F)")


class FirestoreDocuments(FirestoreConnection):
    """Document create / read / compare-and-set / find, and the token-claiming writes."""

    def create_document(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create the document at version 1 if absent (with `expireAt` for TTL)."""
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, 1, expires_at=expires_at), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))
        return self._create_if_absent("create_document", ref, fields, write_id)

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        ref = self._items(collection).document(docs.doc_id(doc_id))

        def op(a: Attempt) -> tuple[dict[str, Any], int] | None:
            snap = ref.get(**self._kw(a))
            return docs.document_from_fields(snap.to_dict()) if snap.exists else None

        return self._run("get_document", op)

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_document` for each key, in order, in one batched read (one RPC)."""
        if not keys:
            return []
        refs = [self._items(collection).document(docs.doc_id(doc_id)) for collection, doc_id in keys]

        def op(a: Attempt) -> list[tuple[dict[str, Any], int] | None]:
            by_path = {snap.reference.path: snap for snap in self._client.get_all(refs, **self._kw(a))}
            out: list[tuple[dict[str, Any], int] | None] = []
            for ref in refs:
                snap: Any = by_path.get(ref.path)
                out.append(docs.document_from_fields(snap.to_dict()) if snap is not None and snap.exists else None)
            return out

        return self._run("get_documents", op)

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int) -> bool:
        """Replace the document if it is still at `expected_version`.

        Reads the version and the server's `update_time`, then writes with
        that `update_time` as precondition: any write in between fails ours.
        """
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, expected_version + 1), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))

        def op(a: Attempt) -> bool:
            snap = ref.get(**self._kw(a))
            if not snap.exists:
                return False
            version = int(snap.get("v"))
            if version != expected_version:
                # A previous attempt of ours may have landed without an answer.
                return a.number > 1 and version == expected_version + 1 and (snap.get("w") == write_id)
            option = self._client.write_option(last_update_time=snap.update_time)
            try:
                ref.update(fields, option=option, **self._kw(a))
            except (self._api.FailedPrecondition, self._api.NotFound):
                return False
            return True

        return self._run("update_document", op)

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Return documents whose top-level string `field` equals `value`, by id.

        One equality query on `idx.f<field>` (single-field index); each hit is
        re-checked on the decoded data, so a digest-indexed long value can
        never return a wrong match.
        """
        if limit <= 0:
            return []
        path = self._field_path("idx", docs.index_key(field)).to_api_repr()
        query = (
            self._items(collection)
            .where(filter=self._filter(path, "==", codec.index_value(value)))
            .order_by(self._document_id, direction=self._ascending)
            .limit(limit)
        )

        def op(a: Attempt) -> list[tuple[str, dict[str, Any], int]]:
            out: list[tuple[str, dict[str, Any], int]] = []
            for snap in query.stream(**self._kw(a)):
                data, version = docs.document_from_fields(snap.to_dict())
                if codec.field_matches(data, field, value):
                    out.append((_raw_id(snap.id), data, version))
            return out

        return self._run("find_documents", op)

    def _claim_landed_or_raise(self, claim_ref: Any, write_id: str, a: Attempt) -> bool:
        """After a failed batch: True if our earlier attempt landed, TokenAlreadyUsed if another claimed it."""
        snap = claim_ref.get(**self._kw(a))
        if not snap.exists:
            return False
        if (snap.to_dict() or {}).get("w") == write_id:
            return True  # the batch is atomic: our claim there means our document write landed too
        raise TokenAlreadyUsed()

    def create_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        claim: TokenClaim,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create the claim and the document in one batch (both or neither)."""
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, 1, expires_at=expires_at), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))
        claim_ref, claim_fields = self._claim_doc(claim, write_id)

        def op(a: Attempt) -> bool:
            batch = self._client.batch()
            batch.create(claim_ref, claim_fields)
            batch.create(ref, fields)
            try:
                batch.commit(**self._kw(a))
                return True
            except self._api.AlreadyExists:
                # Claim absent: the document existed, and nothing of ours landed.
                return self._claim_landed_or_raise(claim_ref, write_id, a)

        return self._run("create_document_claiming", op)

    def update_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expected_version: int,
        claim: TokenClaim,
    ) -> bool:
        """Create the claim and replace the document (at `expected_version`) in one batch."""
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, expected_version + 1), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))
        claim_ref, claim_fields = self._claim_doc(claim, write_id)

        def op(a: Attempt) -> bool:
            snap = ref.get(**self._kw(a))
            if not snap.exists or int(snap.get("v")) != expected_version:
                # Ours, if an earlier unanswered attempt landed; a claim spent by another refuses.
                return self._claim_landed_or_raise(claim_ref, write_id, a)
            batch = self._client.batch()
            batch.create(claim_ref, claim_fields)
            batch.update(ref, fields, option=self._client.write_option(last_update_time=snap.update_time))
            try:
                batch.commit(**self._kw(a))
                return True
            except self._api.AlreadyExists:
                return self._claim_landed_or_raise(claim_ref, write_id, a)
            except (self._api.FailedPrecondition, self._api.NotFound):
                return self._claim_landed_or_raise(claim_ref, write_id, a)

        return self._run("update_document_claiming", op)


def _raw_id(stored: str) -> str:
    """Invert `firestore_docs.doc_id` (a hashed over-long id cannot be; it comes back hashed)."""
    if stored.startswith("~00"):
        stored = stored[3:]
    return _ESCAPE.sub(lambda m: "/" if m.group(1) == "2F" else "~", stored)
