"""Inventories on every store backend (memory, SQLite, the Firestore emulator): one contract.

What every consumer relies on: create-if-absent, entries that read back equal to what was
written (fresh objects, normalised as JSON), replace on put, key-ordered paging by a
cursor (code point order, so non-ASCII keys page the same everywhere), deletes that report
whether something was there, and no entry visible without its inventory (a deleted and
re-created inventory starts empty).
"""

from __future__ import annotations

import datetime as dt

import pytest

from shared.inventory.base import Inventory, InventoryError, InventoryReader, InventoryStore
from shared.store.base import Store

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def test_store_is_an_inventory_store(store: Store) -> None:
    assert isinstance(store, InventoryStore) and isinstance(store, InventoryReader)


def test_create_is_create_if_absent(store: Store) -> None:
    assert store.create_inventory(Inventory("hosts", "hosts", T0))
    assert not store.create_inventory(Inventory("hosts", "people", T0 + dt.timedelta(seconds=5)))
    assert store.get_inventory("hosts") == Inventory("hosts", "hosts", T0)
    assert store.get_inventory("absent") is None
    store.create_inventory(Inventory("a-people", "people", T0))
    assert [i.name for i in store.list_inventories()] == ["a-people", "hosts"]


def test_entries_round_trip_replace_and_delete(store: Store) -> None:
    store.create_inventory(Inventory("hosts", "hosts", T0))
    entry = {"workload": "billing", "sans": ["a.example", "b.example"], "n": 3, "f": 1.5, "ok": True, "x": None,
             "nested": {"deep": {"k": "ü"}}}
    assert store.put_inventory_entries("hosts", {"vm-1": entry, "vm-2": {"workload": "web"}})
    got = store.get_inventory_entry("hosts", "vm-1")
    assert got == entry
    assert got is not None
    got["workload"] = "changed by the caller"  # a fresh object: the store's copy is untouched
    assert store.get_inventory_entry("hosts", "vm-1") == entry
    assert store.put_inventory_entries("hosts", {"vm-1": {"workload": "payroll"}})
    assert store.get_inventory_entry("hosts", "vm-1") == {"workload": "payroll"}
    assert store.get_inventory_entry("hosts", "vm-3") is None
    assert store.get_inventory_entry("nope", "vm-1") is None
    assert store.delete_inventory_entry("hosts", "vm-1")
    assert not store.delete_inventory_entry("hosts", "vm-1")
    assert not store.delete_inventory_entry("nope", "vm-2")
    assert store.get_inventory_entry("hosts", "vm-1") is None
    assert store.get_inventory_entry("hosts", "vm-2") == {"workload": "web"}


def test_put_into_a_missing_inventory_writes_nothing(store: Store) -> None:
    assert not store.put_inventory_entries("ghost", {"k": {"a": 1}})
    store.create_inventory(Inventory("ghost", "hosts", T0))
    assert store.get_inventory_entry("ghost", "k") is None


def test_pages_in_code_point_order_by_cursor(store: Store) -> None:
    store.create_inventory(Inventory("people", "people", T0))
    keys = ["bob@example.com", "Alice@example.com", "zoë@example.com", "zoe@example.com", "a/b~c", "ä", "日本"]
    store.put_inventory_entries("people", {k: {"i": i} for i, k in enumerate(keys)})
    seen: list[str] = []
    after = ""
    while True:
        page = store.list_inventory_entries("people", after=after, limit=3)
        if not page:
            break
        assert len(page) <= 3
        seen.extend(k for k, _ in page)
        after = page[-1][0]
    assert seen == sorted(keys)
    assert dict(store.list_inventory_entries("people", limit=100))["zoë@example.com"] == {"i": 2}
    assert store.list_inventory_entries("people", limit=0) == []
    assert store.list_inventory_entries("absent") == []


def test_delete_inventory_removes_its_entries(store: Store) -> None:
    store.create_inventory(Inventory("hosts", "hosts", T0))
    store.create_inventory(Inventory("other", "hosts", T0))
    store.put_inventory_entries("hosts", {f"vm-{i}": {"i": i} for i in range(5)})
    store.put_inventory_entries("other", {"vm-1": {"keep": True}})
    assert store.delete_inventory("hosts")
    assert not store.delete_inventory("hosts")
    assert store.get_inventory("hosts") is None
    assert store.get_inventory_entry("hosts", "vm-1") is None
    store.create_inventory(Inventory("hosts", "services", T0))
    assert store.list_inventory_entries("hosts") == []  # re-created empty
    assert store.get_inventory_entry("other", "vm-1") == {"keep": True}


def test_a_large_import_lands_whole(store: Store) -> None:
    store.create_inventory(Inventory("hosts", "hosts", T0))
    entries = {f"host-{i:04d}.example": {"i": i} for i in range(1200)}  # more than one Firestore batch
    assert store.put_inventory_entries("hosts", entries)
    assert len(store.list_inventory_entries("hosts", limit=1000)) == 1000
    assert store.get_inventory_entry("hosts", "host-1199.example") == {"i": 1199}


def test_out_of_bounds_entries_are_refused_by_the_store(store: Store) -> None:
    store.create_inventory(Inventory("hosts", "hosts", T0))
    with pytest.raises(InventoryError):
        store.put_inventory_entries("hosts", {"ok": {"a": 1}, "big": {"x": "y" * 9000}})
    with pytest.raises(InventoryError):
        store.put_inventory_entries("hosts", {"nan": {"x": float("nan")}})
    assert store.get_inventory_entry("hosts", "ok") is None  # nothing of the refused put landed
