"""Issue 12 item 15: the SQLite store's files (EAB HMAC keys, ACME nonce key) are 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.store.sqlite import SQLiteStore


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default, under which SQLite makes 0644 files
    yield
    os.umask(old)


def modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def test_a_new_store_is_private(tmp_path: Path, umask_022: None) -> None:
    store = SQLiteStore(tmp_path / "cirrus.db")
    try:
        store.create_document("eab", "k1", {"hmac": "secret"})
        found = modes(tmp_path)
    finally:
        store.close()
    assert {"cirrus.db", "cirrus.db-wal", "cirrus.db-shm", "cirrus.db.writelock"} <= set(found)
    assert set(found.values()) == {0o600}, found


def test_an_older_store_is_narrowed_on_open(tmp_path: Path, umask_022: None) -> None:
    SQLiteStore(tmp_path / "cirrus.db").close()
    for p in tmp_path.iterdir():
        p.chmod(0o644)  # as an older release left them
    store = SQLiteStore(tmp_path / "cirrus.db")
    try:
        assert set(modes(tmp_path).values()) == {0o600}, modes(tmp_path)
    finally:
        store.close()
