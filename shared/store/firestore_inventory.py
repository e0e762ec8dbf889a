"""The Firestore store's inventories (mixed into `FirestoreStore`; the contract is `shared.inventory.base`).

Layout: `P + inventories`/{name} holds `name`, `kind` and `created` (the codec's ISO text);
its subcollection `P + inventory_entries`/{key} holds `key` (the raw key, which the pages order by:
Firestore orders strings by their UTF-8 bytes, i.e. by code point, like the other backends)
and `data` (the entry's compact JSON text, so no Firestore map-key or nesting rule applies).
Document ids go through `firestore_docs.doc_id`; `data` is exempt from indexing
(`firestore_indexes.json`): nothing queries it, and up to 8 KiB of text per entry would be
index writes for nothing.

An import writes in transactions of up to `_BATCH` entries, each of which reads the
inventory document first (so none lands in an inventory deleted meanwhile). A delete removes
the inventory document first, then its entries in batches; an entry read asks for the
inventory and the entry in one batched RPC and answers None without the inventory, so
entries a failed delete left behind are never served, and `create_inventory` clears them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.inventory.base import Inventory, entry_from_text, entry_text
from shared.retry import Attempt
from shared.store import codec
from shared.store.firestore_connection import FirestoreConnection
from shared.store.firestore_docs import doc_id

INVENTORIES = "inventories"
ENTRIES = "inventory_entries"
_BATCH = 400


class FirestoreInventories(FirestoreConnection):
    """Inventory operations (mixed into `FirestoreStore`) on the store's connection."""

    def _inventory_ref(self, name: str) -> Any:
        return self._col(INVENTORIES).document(doc_id(name))

    def _entries(self, name: str) -> Any:
        return self._inventory_ref(name).collection(self.prefix + ENTRIES)

    def _purge_entries(self, name: str, a: Attempt) -> None:
        entries = self._entries(name)
        while True:
            refs = [snap.reference for snap in entries.select([]).limit(_BATCH).stream(**self._kw(a))]
            if not refs:
                return
            batch = self._client.batch()
            for ref in refs:
                batch.delete(ref)
            batch.commit(**self._kw(a))

    def create_inventory(self, inventory: Inventory) -> bool:
        """Create if absent (clearing entries a failed delete of the same name left)."""
        ref = self._inventory_ref(inventory.name)
        fields = {"name": inventory.name, "kind": inventory.kind, "created": codec.to_iso(inventory.created_at)}

        def op(a: Attempt) -> bool:
            snap = ref.get(**self._kw(a))
            if snap.exists:
                return bool(snap.get("created") == fields["created"] and snap.get("kind") == inventory.kind
                            and a.number > 1)  # our own earlier attempt landed
            self._purge_entries(inventory.name, a)
            try:
                ref.create(fields, **self._kw(a))
            except self._api.AlreadyExists:
                return False
            return True

        return self._run("create_inventory", op)

    @staticmethod
    def _inventory(data: Mapping[str, Any]) -> Inventory:
        return Inventory(str(data["name"]), str(data["kind"]), codec.from_iso(str(data["created"])))

    def get_inventory(self, name: str) -> Inventory | None:
        """The inventory, or None."""
        ref = self._inventory_ref(name)

        def op(a: Attempt) -> Inventory | None:
            snap = ref.get(**self._kw(a))
            return self._inventory(snap.to_dict()) if snap.exists else None

        return self._run("get_inventory", op)

    def list_inventories(self) -> Sequence[Inventory]:
        """Every inventory, by name."""
        query = self._col(INVENTORIES).order_by("name", direction=self._ascending)

        def op(a: Attempt) -> list[Inventory]:
            return [self._inventory(snap.to_dict()) for snap in query.stream(**self._kw(a))]

        return self._run("list_inventories", op)

    def delete_inventory(self, name: str) -> bool:
        """Delete the inventory document, then its entries."""
        ref = self._inventory_ref(name)

        def op(a: Attempt) -> bool:
            existed = bool(ref.get(**self._kw(a)).exists)
            if existed:
                ref.delete(**self._kw(a))
            self._purge_entries(name, a)
            return existed

        return self._run("delete_inventory", op)

    def put_inventory_entries(self, name: str, entries: Mapping[str, Mapping[str, Any]]) -> bool:
        """Create or replace entries, in transactions of up to `_BATCH` that each check the inventory."""
        rows = [(key, entry_text(dict(entry))) for key, entry in entries.items()]
        inv_ref = self._inventory_ref(name)
        coll = self._entries(name)
        for start in range(0, max(len(rows), 1), _BATCH):
            if not self._put_chunk(inv_ref, coll, rows[start:start + _BATCH]):
                return False
        return True

    def _put_chunk(self, inv_ref: Any, coll: Any, chunk: Sequence[tuple[str, str]]) -> bool:
        """One transaction: the inventory must exist; then every entry of the chunk is set."""
        found = True

        def body(tx: Any) -> None:
            nonlocal found
            found = bool(inv_ref.get(transaction=tx).exists)
            if found:
                for key, text in chunk:
                    tx.set(coll.document(doc_id(key)), {"key": key, "data": text})

        def op(a: Attempt) -> None:
            self._transaction(body)

        self._run("put_inventory_entries", op)
        return found

    def get_inventory_entry(self, name: str, key: str) -> dict[str, Any] | None:
        """The entry, or None: the inventory and the entry in one batched read."""
        inv_ref = self._inventory_ref(name)
        ref = self._entries(name).document(doc_id(key))

        def op(a: Attempt) -> dict[str, Any] | None:
            snaps = {s.reference.path: s for s in self._client.get_all([inv_ref, ref], **self._kw(a))}
            inv, entry = snaps.get(inv_ref.path), snaps.get(ref.path)
            if inv is None or not inv.exists or entry is None or not entry.exists:
                return None
            return entry_from_text(str(entry.get("data")))

        return self._run("get_inventory_entry", op)

    def list_inventory_entries(
        self, name: str, *, after: str = "", limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any]]]:
        """A page of entries in key order (none without the inventory)."""
        if limit <= 0:
            return []
        query = self._entries_page_query(name, after, limit)
        inv_ref = self._inventory_ref(name)

        def op(a: Attempt) -> list[tuple[str, dict[str, Any]]]:
            if not inv_ref.get(**self._kw(a)).exists:
                return []
            return [(str(s.get("key")), entry_from_text(str(s.get("data")))) for s in query.stream(**self._kw(a))]

        return self._run("list_inventory_entries", op)

    def _entries_page_query(self, name: str, after: str, limit: int) -> Any:
        """Entries after a key, in key order: the `key` field's automatic single-field index."""
        query = self._entries(name).order_by("key", direction=self._ascending)
        if after:
            query = query.where(filter=self._filter("key", ">", after))
        return query.limit(limit)

    def delete_inventory_entry(self, name: str, key: str) -> bool:
        """Delete one entry."""
        ref = self._entries(name).document(doc_id(key))
        inv_ref = self._inventory_ref(name)

        def op(a: Attempt) -> bool:
            snaps = {s.reference.path: s for s in self._client.get_all([inv_ref, ref], **self._kw(a))}
            inv, entry = snaps.get(inv_ref.path), snaps.get(ref.path)
            if inv is None or not inv.exists or entry is None or not entry.exists:
                return False
            ref.delete(**self._kw(a))
            return True

        return self._run("delete_inventory_entry", op)
