"""The shard fan-out returns the same ordered pages as an unsharded query, on every backend.

Firestore's time-ordered queries ask each of N shards for its first `limit` rows and
merge them (`shared/store/firestore_shards.py`); SQLite and memory answer from one
ordered index. One data set, with timestamp ties that straddle shards, is written to
each backend (Firestore with N=1, which is the unsharded query shape, and with N=7)
and every paged query must give the same rows in the same order, equal to the order
computed here from the data itself.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_firestore import PROJECT, emulator_host, unique_prefix
from test_store_contract import DAY, T0, cert, event, revocation

from shared.cli import main
from shared.clock import FixedClock
from shared.retry import RetryPolicy
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore

US = dt.timedelta(microseconds=1)


def _firestore(shards: int) -> Callable[[Path], Any]:
    def make(tmp: Path) -> Any:
        emulator_host()
        from shared.store.firestore import FirestoreStore

        return FirestoreStore(
            project=PROJECT, prefix=unique_prefix(), clock=FixedClock(T0), retry=RetryPolicy(deadline=30.0), shards=shards
        )

    return make


BACKENDS: dict[str, Callable[[Path], Any]] = {
    "memory": lambda tmp: MemoryStore(clock=FixedClock(T0)),
    "sqlite": lambda tmp: SQLiteStore(tmp / "store.db", clock=FixedClock(T0)),
    "firestore-unsharded": _firestore(1),
    "firestore-7-shards": _firestore(7),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    backend = BACKENDS[request.param](tmp_path)
    try:
        yield backend
    finally:
        backend.close()


def _data() -> dict[str, Any]:
    """40 certificates in 12 distinct instants (ties across shards), 15 revocations, 20 events."""
    rng = random.Random(18)
    certs = []
    for i in range(40):
        issued = T0 + rng.randrange(12) * US
        expires = issued + DAY + rng.randrange(5) * dt.timedelta(seconds=1)
        certs.append(cert(f"{rng.getrandbits(64):x}", endpoint_id=f"ep-{i}", issued_at=issued, not_after=expires))
    revs = [revocation(c.serial, not_after=c.not_after) for c in certs[:15]]
    events = [event(f"ev{rng.getrandbits(48):x}", time=T0 + rng.randrange(6) * US) for _ in range(20)]
    return {"certs": certs, "revs": revs, "events": events}


def _pages_issued(store: Any, limit: int) -> list[list[str]]:
    pages, cursor, after = [], T0 - DAY, ""
    while page := store.list_serials_issued_since("auth-1", cursor, limit=limit, after_serial=after):
        pages.append([serial for _, serial, _, _ in page])
        cursor, after = page[-1][0], page[-1][1]
    return pages


def test_fan_out_pages_equal_the_unsharded_order(store: Any) -> None:
    data = _data()
    for c in data["certs"]:
        store.record_issuance(c)
    for r in data["revs"]:
        store.revoke(r)
    store.append_events(data["events"])

    by_issue = [c.serial for c in sorted(data["certs"], key=lambda c: (c.issued_at, c.serial))]
    for limit in (1, 3, 7, 50):
        pages = _pages_issued(store, limit)
        assert [s for p in pages for s in p] == by_issue, limit
        assert all(len(p) == limit for p in pages[:-1])

    by_expiry = sorted(data["certs"], key=lambda c: (c.not_after, c.serial))
    window = (T0 + DAY + dt.timedelta(seconds=1), T0 + DAY + dt.timedelta(seconds=4))
    wanted = [(c.not_after, c.serial, c.endpoint_id) for c in by_expiry if window[0] <= c.not_after < window[1]]
    assert list(store.list_certificates_expiring("auth-1", *window, limit=1000)) == wanted
    assert list(store.list_certificates_expiring("auth-1", *window, limit=5)) == wanted[:5]

    revoked = sorted(data["revs"], key=lambda r: (r.not_after, r.serial))
    since = T0 + DAY + dt.timedelta(seconds=2)
    assert [r.serial for r in store.list_revocations("auth-1", not_after_since=since)] == [
        r.serial for r in revoked if r.not_after >= since
    ]
    assert store.revoked_since(T0) and not store.revoked_since(T0 + US)

    logged = sorted(data["events"], key=lambda e: (e.time, e.id))
    assert [e.id for e in store.list_events(limit=7)] == [e.id for e in logged[:7]]
    since_ev = T0 + 3 * US
    assert [e.id for e in store.list_events(since=since_ev, limit=100)] == [e.id for e in logged if e.time >= since_ev]


def test_documents_from_before_shards_are_found_after_the_backfill(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Existing Firestore data (no `shard` field) is invisible to the sharded queries until backfilled."""
    store = _firestore(4)(tmp_path)
    try:
        old = [cert(f"{n:x}0", endpoint_id=f"e{n}", issued_at=T0 + n * US) for n in range(6)]
        for c in old:
            store.record_issuance(c)
        store.revoke(revocation(old[0].serial))
        store.append_events([event("ev-old")])
        # strip `shard`, as documents written before issue 18 are
        from google.cloud.firestore_v1 import DELETE_FIELD

        for name, ids in (("certificates", [c.serial for c in old]), ("revocations", [old[0].serial]), ("events", ["ev-old"])):
            for doc in ids:
                store._col(name).document(doc).update({"shard": DELETE_FIELD})
        assert store.list_serials_issued_since("auth-1", T0 - DAY) == []
        assert store.list_revocations("auth-1", not_after_since=T0) == []

        url = f"firestore:{PROJECT}?prefix={store.prefix}&shards=4"
        assert main(["store", "backfill-shards", "--store", url]) == 0  # what the operator runs
        assert capsys.readouterr().out == "backfilled 8 document(s)\n"
        assert [r[1] for r in store.list_serials_issued_since("auth-1", T0 - DAY)] == [c.serial for c in old]
        assert [r.serial for r in store.list_revocations("auth-1", not_after_since=T0)] == [old[0].serial]
        assert [e.id for e in store.list_events()] == ["ev-old"]
        assert store.backfill_shards() == 0  # idempotent
        # raising N keeps every document reachable without a backfill (shards 0..3 are among 0..7)
        from shared.store.firestore import FirestoreStore

        wider = FirestoreStore(project=PROJECT, prefix=store.prefix, clock=FixedClock(T0), shards=8)
        try:
            assert [r[1] for r in wider.list_serials_issued_since("auth-1", T0 - DAY)] == [c.serial for c in old]
        finally:
            wider.close()
    finally:
        store.close()


def test_backfill_on_a_store_without_shards_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "backfill-shards", "--store", "memory:"]) == 1
    err = capsys.readouterr().err
    assert err == "cirrus store backfill-shards: memory: store has no index shards; nothing to backfill\n"
