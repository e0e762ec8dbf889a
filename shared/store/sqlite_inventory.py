"""The SQLite store's inventories (mixed into `SQLiteStore`; the contract is `shared.inventory.base`).

Two tables (schema version 5, `sqlite_schema.MIGRATE_4_TO_5`): `inventories` keyed by name
and `inventory_entries` keyed by (inventory, key), both WITHOUT ROWID so an entry lookup at
issuance is one B-tree descent. Keys compare with SQLite's BINARY collation, which orders
UTF-8 text by code point, the same order the other backends page in. An import is one
`BEGIN IMMEDIATE` transaction: all of it or none of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.inventory.base import Inventory, entry_from_text, entry_text
from shared.store import codec
from shared.store.sqlite_connections import SQLiteConnections


class SQLiteInventories(SQLiteConnections):
    """Inventory operations on the store's connections (its `_read` / `_write` transactions)."""

    def create_inventory(self, inventory: Inventory) -> bool:
        """Create if absent."""
        created = codec.to_epoch_us(inventory.created_at, "created_at")
        with self._write("create inventory") as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO inventories (name, kind, created_at) VALUES (?, ?, ?)",
                (inventory.name, inventory.kind, created),
            )
            return cur.rowcount == 1

    def get_inventory(self, name: str) -> Inventory | None:
        """The inventory, or None."""
        with self._read("get inventory") as conn:
            row = conn.execute("SELECT name, kind, created_at FROM inventories WHERE name = ?", (name,)).fetchone()
        return Inventory(row[0], row[1], codec.from_epoch_us(row[2])) if row else None

    def list_inventories(self) -> Sequence[Inventory]:
        """Every inventory, by name."""
        with self._read("list inventories") as conn:
            rows = conn.execute("SELECT name, kind, created_at FROM inventories ORDER BY name").fetchall()
        return [Inventory(r[0], r[1], codec.from_epoch_us(r[2])) for r in rows]

    def delete_inventory(self, name: str) -> bool:
        """Delete it and its entries in one transaction."""
        with self._write("delete inventory") as conn:
            gone = conn.execute("DELETE FROM inventories WHERE name = ?", (name,)).rowcount == 1
            conn.execute("DELETE FROM inventory_entries WHERE inventory = ?", (name,))
            return gone

    def put_inventory_entries(self, name: str, entries: Mapping[str, Mapping[str, Any]]) -> bool:
        """Create or replace entries, all or nothing."""
        rows = [(name, key, entry_text(dict(entry))) for key, entry in entries.items()]
        with self._write("put inventory entries") as conn:
            if conn.execute("SELECT 1 FROM inventories WHERE name = ?", (name,)).fetchone() is None:
                return False
            conn.executemany("INSERT OR REPLACE INTO inventory_entries (inventory, key, data) VALUES (?, ?, ?)", rows)
            return True

    def get_inventory_entry(self, name: str, key: str) -> dict[str, Any] | None:
        """The entry, or None."""
        with self._read("get inventory entry") as conn:
            row = conn.execute(
                "SELECT data FROM inventory_entries WHERE inventory = ? AND key = ?", (name, key)
            ).fetchone()
        return entry_from_text(row[0]) if row else None

    def list_inventory_entries(
        self, name: str, *, after: str = "", limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any]]]:
        """A page of entries in key order."""
        if limit <= 0:
            return []
        with self._read("list inventory entries") as conn:
            rows = conn.execute(
                "SELECT key, data FROM inventory_entries WHERE inventory = ? AND key > ? ORDER BY key LIMIT ?",
                (name, after, limit),
            ).fetchall()
        return [(r[0], entry_from_text(r[1])) for r in rows]

    def delete_inventory_entry(self, name: str, key: str) -> bool:
        """Delete one entry."""
        with self._write("delete inventory entry") as conn:
            cur = conn.execute("DELETE FROM inventory_entries WHERE inventory = ? AND key = ?", (name, key))
            return cur.rowcount == 1
