"""The store's document roles for consumers wired before the store is opened.

A Cloud Function builds its services on its first request (shared.runtime), and the OCSP
responder's requests never touch the store: opening it there imported the backend's modules
(a dozen for Firestore, SQLite's driver and schema locally) for nothing. The composition root
therefore opens the store on first use in a function (`Once`), and hands the consumers it wires
at start (the intermediate rotation's record, the event sinks' delivery tracking) this view,
which opens it on their first document operation. An explicit class, not a `__getattr__`
proxy: runtime Protocol checks against a proxy depend on the Python version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from shared.store.base import Store


class DocumentsWhenUsed:
    """`create/get/update/find_document` of the store `store()` gives, asked on each call."""

    def __init__(self, store: Callable[[], Store]) -> None:
        self._store = store

    def create_document(self, collection: str, doc_id: str, data: dict[str, Any], *,
                        expires_at: dt.datetime | None = None) -> bool:  # fmt: skip
        """As the store does."""
        return self._store().create_document(collection, doc_id, data, expires_at=expires_at)

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """As the store does."""
        return self._store().get_document(collection, doc_id)

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int,
                        **options: Any) -> bool:  # fmt: skip
        """As the store does (`options`: what a backend's update takes beyond the protocol's)."""
        update: Any = self._store().update_document
        return bool(update(collection, doc_id, data, expected_version=expected_version, **options))

    def find_documents(self, collection: str, field: str, value: str, *,
                       limit: int = 100) -> Sequence[tuple[str, dict[str, Any], int]]:  # fmt: skip
        """As the store does."""
        return self._store().find_documents(collection, field, value, limit=limit)
