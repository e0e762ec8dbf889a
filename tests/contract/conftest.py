"""Backend registry for the storage contract suite.

Every test in `test_store_contract.py` that takes the `store` fixture runs once
per entry of `STORE_FACTORIES`. A new backend joins the suite by adding one
entry here; its factory gets a fresh temporary directory per test and must
return an empty store. A factory may call `pytest.skip` only when a setting says
its emulator is absent; CI starts every emulator, so nothing skips there.

`SHARED_STORE_URLS` lists backends that several processes can open at once
(the memory store cannot): the multi-process tests open the URL from each
child process with `shared.store.open.open_store`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_firestore import firestore_store, firestore_url

from shared.clock import FixedClock
from shared.store.base import Store
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def _memory(tmp: Path) -> Store:
    return MemoryStore(clock=FixedClock(T0))


def _sqlite(tmp: Path) -> Store:
    return SQLiteStore(tmp / "store.db", clock=FixedClock(T0))


STORE_FACTORIES: dict[str, Callable[[Path], Store]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "firestore": firestore_store,
}

SHARED_STORE_URLS: dict[str, Callable[[Path], str]] = {
    "sqlite": lambda tmp: f"sqlite:{tmp / 'shared.db'}",
    "firestore": firestore_url,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each registered backend."""
    backend = STORE_FACTORIES[request.param](tmp_path)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(params=sorted(SHARED_STORE_URLS))
def shared_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL several processes can open onto the same, empty store."""
    return SHARED_STORE_URLS[request.param](tmp_path)


@pytest.fixture
def clock() -> FixedClock:
    """A clock frozen at T0."""
    return FixedClock(T0)
