"""`purge_expired_documents`: the sweep for documents created with `expires_at`.

Not part of the `Store` protocol yet (the Firestore backend relies on a TTL
policy instead), so it is tested here on the backends that have it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.clock import FixedClock
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)

Backend = MemoryStore | SQLiteStore
FACTORIES: dict[str, Callable[[Path, FixedClock], Backend]] = {
    "memory": lambda tmp, clock: MemoryStore(clock=clock),
    "sqlite": lambda tmp, clock: SQLiteStore(tmp / "s.db", clock=clock),
}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture(params=sorted(FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock) -> Iterator[Backend]:
    s = FACTORIES[request.param](tmp_path, clock)
    yield s
    s.close()


def test_sweep_deletes_only_expired_documents(store: Backend, clock: FixedClock) -> None:
    store.create_document("nonces", "old", {"k": "v"}, expires_at=T0 + HOUR)
    store.create_document("nonces", "edge", {"k": "v"}, expires_at=T0 + 2 * HOUR)
    store.create_document("nonces", "forever", {"k": "v"})
    clock.advance(2 * HOUR)
    assert store.purge_expired_documents() == 1  # uses the injected clock
    assert store.get_document("nonces", "old") is None
    assert [i for i, _, _ in store.find_documents("nonces", "k", "v")] == ["edge", "forever"]
    assert store.create_document("nonces", "old", {"k": "w"})  # the id is free again
    assert store.purge_expired_documents(T0 + 10 * HOUR) == 1
    assert [i for i, _, _ in store.find_documents("nonces", "k", "v")] == ["forever"]


def test_update_keeps_expiry(store: Backend) -> None:
    store.create_document("orders", "o", {"s": "pending"}, expires_at=T0 + HOUR)
    assert store.update_document("orders", "o", {"s": "ready"}, expected_version=1)
    assert store.purge_expired_documents(T0 + 2 * HOUR) == 1


def test_sweep_rejects_naive_time(store: Backend) -> None:
    with pytest.raises(ValueError):
        store.purge_expired_documents(dt.datetime(2025, 1, 1))
