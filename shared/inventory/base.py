"""What an inventory is, the limits on it, and the storage role its consumers use.

An inventory is a named catalog of one kind (hosts, services, locations, people) whose
entries are JSON objects keyed by a string: a hostname, an email, a cloud instance id. Every
boundary (CLI, admin API, import, the store itself) checks names, keys and entries with the
functions here, so a record that reaches a backend is always within the same bounds: a key
of at most 256 characters without control characters, an entry of at most 8 KiB of compact
JSON nested at most 16 levels deep. The bounds keep one entry a small, cheap read at issuance
(one point lookup per certificate) and fit every backend's document limits.

`InventoryStore` is the narrow protocol the CLI, the admin API and the dashboard use;
`InventoryReader` is the one read the issuing pipeline needs. The memory, SQLite and
Firestore stores implement both (tests/contract/test_inventory_contract.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

KINDS = ("hosts", "services", "locations", "people")
MAX_KEY_CHARS = 256
MAX_ENTRY_BYTES = 8192
MAX_ENTRY_DEPTH = 16
MAX_IMPORT_ENTRIES = 10_000
MAX_PAGE = 1000
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\Z")


class InventoryError(ValueError):
    """An inventory name, kind, key or entry outside the bounds (the message says which, safe to show)."""


@dataclass(frozen=True, slots=True)
class Inventory:
    """One catalog: its name, its kind and when it was created."""

    name: str
    kind: str
    created_at: dt.datetime


def check_name(name: object) -> str:
    """An inventory name: 1-63 of `a-z 0-9 _ -`, starting with a letter or digit.

    Raises:
        InventoryError: anything else.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InventoryError("inventory name must be 1-63 of a-z, 0-9, '_' and '-', starting with a-z or 0-9")
    return name


def check_kind(kind: object) -> str:
    """One of `KINDS`.

    Raises:
        InventoryError: anything else.
    """
    if not isinstance(kind, str) or kind not in KINDS:
        raise InventoryError(f"inventory kind must be one of {', '.join(KINDS)}")
    return kind


def check_key(key: object) -> str:
    """An entry key: 1-256 characters, no control characters, valid Unicode text.

    Raises:
        InventoryError: anything else.
    """
    if not isinstance(key, str) or not key:
        raise InventoryError("entry key must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise InventoryError(f"entry key is longer than {MAX_KEY_CHARS} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in key):
        raise InventoryError("entry key contains a control character")
    return key


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_ENTRY_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def entry_text(entry: object) -> str:
    """An entry as the compact JSON text every backend stores, after checking its bounds.

    Raises:
        InventoryError: not a JSON object, not JSON at all (NaN, a non-string key, a surrogate),
            nested too deep, or larger than `MAX_ENTRY_BYTES`.
    """
    if not isinstance(entry, dict):
        raise InventoryError("entry must be a JSON object")
    if _depth(entry) > MAX_ENTRY_DEPTH:
        raise InventoryError(f"entry is nested deeper than {MAX_ENTRY_DEPTH} levels")
    try:
        text = json.dumps(entry, allow_nan=False, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError):
        raise InventoryError("entry must be plain JSON (string keys, finite numbers, valid text)") from None
    if size > MAX_ENTRY_BYTES:
        raise InventoryError(f"entry is larger than {MAX_ENTRY_BYTES} bytes of JSON")
    return text


def entry_from_text(text: str) -> dict[str, Any]:
    """The stored JSON text back as a fresh object (callers may change it freely)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored inventory entry is not an object")
    return value


@runtime_checkable
class InventoryReader(Protocol):
    """The one read issuance needs: an entry by key."""

    def get_inventory_entry(self, name: str, key: str) -> dict[str, Any] | None:
        """The entry, or None if the inventory or the key is absent."""
        ...


@runtime_checkable
class InventoryStore(InventoryReader, Protocol):
    """Managing inventories (CLI, admin API, dashboard). Every method is one durable operation."""

    def create_inventory(self, inventory: Inventory) -> bool:
        """Create if absent; False if an inventory of that name exists."""
        ...

    def get_inventory(self, name: str) -> Inventory | None:
        """The inventory, or None."""
        ...

    def list_inventories(self) -> Sequence[Inventory]:
        """Every inventory, by name."""
        ...

    def delete_inventory(self, name: str) -> bool:
        """Delete the inventory and all its entries; False if there was none."""
        ...

    def put_inventory_entries(self, name: str, entries: Mapping[str, Mapping[str, Any]]) -> bool:
        """Create or replace these entries (keys and entries already checked); False if no such inventory.

        SQLite and memory write all or nothing; Firestore writes batches of up to 500 (each
        atomic), so a failure part-way leaves a prefix that re-running the same import completes.
        """
        ...

    def list_inventory_entries(
        self, name: str, *, after: str = "", limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any]]]:
        """Up to `limit` entries whose key sorts after `after` (code point order), in key order."""
        ...

    def delete_inventory_entry(self, name: str, key: str) -> bool:
        """Delete one entry; False if it was absent."""
        ...
