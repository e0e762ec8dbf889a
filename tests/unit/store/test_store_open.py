"""`open_store`: URL schemes, validation, lazy backend imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.clock import SystemClock
from shared.errors import ConfigError
from shared.store.base import Store
from shared.store.memory import MemoryStore
from shared.store.open import BACKENDS, open_store
from shared.store.sqlite import SQLiteStore

CLOCK = SystemClock()


def test_memory_url_gives_a_fresh_store_each_time() -> None:
    one = open_store("memory:", clock=CLOCK)
    two = open_store("memory:", clock=CLOCK)
    assert isinstance(one, MemoryStore) and isinstance(one, Store)
    assert one.next_value("c") == 1 and two.next_value("c") == 1


@pytest.mark.parametrize("form", ["sqlite:{p}", "sqlite://{p}", "SQLITE:{p}"])
def test_sqlite_url_forms_open_the_same_file(tmp_path: Path, form: str) -> None:
    path = tmp_path / "ca.db"
    store = open_store(form.format(p=path), clock=CLOCK)
    try:
        assert isinstance(store, SQLiteStore) and isinstance(store, Store)
        assert store.path == str(path)
        assert store.next_value("c") == 1
    finally:
        store.close()
    assert path.exists()


def test_sqlite_url_options(tmp_path: Path) -> None:
    store = open_store(
        f"sqlite:{tmp_path / 'f.db'}?synchronous=full&busy_timeout_ms=250", clock=CLOCK
    )
    assert isinstance(store, SQLiteStore)
    conn = store._acquire()
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 250
    finally:
        store._release(conn)
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:relative/path.db",
        "sqlite:",
        "sqlite://host/path.db",
        "sqlite:/tmp/x.db?synchronous=off",
        "sqlite:/tmp/x.db?busy_timeout_ms=soon",
        "sqlite:/tmp/x.db?journal=delete",
        "postgres://db/ca",
        "memory",
        "",
        "/abs/path.db",
    ],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url, clock=CLOCK)


def test_backends_are_imported_lazily() -> None:
    code = (
        "import sys, shared.store.open as o\n"
        "assert 'shared.store.sqlite' not in sys.modules\n"
        "assert 'shared.store.memory' not in sys.modules\n"
        "o.open_store('memory:', clock=None)\n"
        "assert 'shared.store.memory' in sys.modules\n"
        "assert 'shared.store.sqlite' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_registered_backend_module_has_from_url() -> None:
    import importlib

    for module_name in BACKENDS.values():
        assert callable(importlib.import_module(module_name).from_url)
