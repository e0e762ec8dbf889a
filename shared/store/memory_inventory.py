"""The memory store's inventories (mixed into `MemoryStore`; the contract is `shared.inventory.base`).

Entries are kept as the same compact JSON text the durable backends store, so what a
reader gets back is a fresh object normalised exactly as SQLite or Firestore return it.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from shared.inventory.base import Inventory, entry_from_text, entry_text


class MemoryInventories:
    """Inventories in dictionaries behind the store's lock."""

    _lock: threading.RLock
    # name -> (inventory, key -> entry JSON, sorted keys)
    _inventories: dict[str, tuple[Inventory, dict[str, str], list[str]]]

    def create_inventory(self, inventory: Inventory) -> bool:
        """Create if absent."""
        with self._lock:
            if inventory.name in self._inventories:
                return False
            self._inventories[inventory.name] = (inventory, {}, [])
            return True

    def get_inventory(self, name: str) -> Inventory | None:
        """The inventory, or None."""
        with self._lock:
            found = self._inventories.get(name)
            return found[0] if found else None

    def list_inventories(self) -> Sequence[Inventory]:
        """Every inventory, by name."""
        with self._lock:
            return [self._inventories[n][0] for n in sorted(self._inventories)]

    def delete_inventory(self, name: str) -> bool:
        """Delete it and its entries."""
        with self._lock:
            return self._inventories.pop(name, None) is not None

    def put_inventory_entries(self, name: str, entries: Mapping[str, Mapping[str, Any]]) -> bool:
        """Create or replace entries, all or nothing."""
        texts = {key: entry_text(dict(entry)) for key, entry in entries.items()}
        with self._lock:
            found = self._inventories.get(name)
            if found is None:
                return False
            _, stored, keys = found
            for key, text in texts.items():
                if key not in stored:
                    bisect.insort(keys, key)
                stored[key] = text
            return True

    def get_inventory_entry(self, name: str, key: str) -> dict[str, Any] | None:
        """The entry, or None."""
        with self._lock:
            found = self._inventories.get(name)
            text = found[1].get(key) if found else None
        return entry_from_text(text) if text is not None else None

    def list_inventory_entries(
        self, name: str, *, after: str = "", limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any]]]:
        """A page of entries in key order."""
        with self._lock:
            found = self._inventories.get(name)
            if found is None or limit <= 0:
                return []
            _, stored, keys = found
            start = bisect.bisect_right(keys, after) if after else 0
            page = [(k, stored[k]) for k in keys[start:start + limit]]
        return [(k, entry_from_text(t)) for k, t in page]

    def delete_inventory_entry(self, name: str, key: str) -> bool:
        """Delete one entry."""
        with self._lock:
            found = self._inventories.get(name)
            if found is None or key not in found[1]:
                return False
            del found[1][key]
            keys = found[2]
            del keys[bisect.bisect_left(keys, key)]
            return True
