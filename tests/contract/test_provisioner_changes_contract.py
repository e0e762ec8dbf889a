"""`provisioner.changed` on every store backend: one event per change, also when instances race.

Each "instance" is a separate store object opened on the same database (SQLite file, Firestore
emulator), as separate processes or function instances would be; they are released together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from test_store_contract import run_threads

from shared.clock import FixedClock
from shared.events.base import PROVISIONER_CHANGED
from shared.model import Event, ProvisionerRef
from shared.provisioners.changes import record_provisioner_changes
from shared.store.base import Store
from shared.store.open import open_store

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
JWK = (ProvisionerRef(id="jwk/admin", name="admin", type="JWK"), {"type": "JWK", "name": "admin", "key": {"kid": "1"}})
ACME = (ProvisionerRef(id="acme/acme", name="acme", type="ACME"), {"type": "ACME", "name": "acme"})


class Recorder:
    """A sink that keeps what it was given."""

    def __init__(self) -> None:
        self.seen: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        self.seen.extend(events)


def changed_events(store: Any) -> list[Event]:
    return [e for e in store.list_events(since=T0 - dt.timedelta(days=1), limit=1000) if e.type == PROVISIONER_CHANGED]


def test_changes_are_recorded_once_each(store: Store) -> None:
    sink = Recorder()

    def run(entries: list[Any], at: dt.datetime) -> Event | None:
        return record_provisioner_changes(store, entries, authority_id="auth-1", now=at, sinks=[sink])

    first = run([JWK], T0)  # nothing recorded yet: the whole set is added
    assert first is not None and first.data["added"] == [{"id": "jwk/admin", "name": "admin", "type": "JWK"}]
    assert first.data["previousFingerprint"] is None
    assert run([JWK], T0 + dt.timedelta(minutes=1)) is None  # a restart with the same config: nothing
    added = run([JWK, ACME], T0 + dt.timedelta(minutes=2))
    assert added is not None and [p["id"] for p in added.data["added"]] == ["acme/acme"]
    assert added.data["removed"] == [] and added.data["changed"] == []
    assert added.data["previousFingerprint"] == first.data["fingerprint"]
    # The same provisioner with another key in its block is "changed"; its config never leaves the store.
    rekeyed = (JWK[0], {**JWK[1], "key": {"kid": "2"}})
    changed = run([rekeyed, ACME], T0 + dt.timedelta(minutes=3))
    assert changed is not None and changed.data["changed"] == [{"id": "jwk/admin", "name": "admin", "type": "JWK"}]
    assert "kid" not in changed.to_cloudevent_json()
    removed = run([ACME], T0 + dt.timedelta(minutes=4))
    assert removed is not None and [p["id"] for p in removed.data["removed"]] == ["jwk/admin"]
    # Back to a set seen before is a change too (its own event, not de-duplicated with the first).
    again = run([JWK, ACME], T0 + dt.timedelta(minutes=5))
    assert again is not None and again.id != added.id
    logged = changed_events(store)
    assert [e.id for e in logged] == [e.id for e in (first, added, changed, removed, again)]
    assert [e.id for e in sink.seen] == [e.id for e in logged]
    assert all(e.source.endswith("/auth-1") and e.subject == "auth-1" for e in logged)


def test_racing_instances_raise_one_event(shared_store_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    stores = [open_store(shared_store_url, clock=clock) for _ in range(4)]
    sinks = [Recorder() for _ in stores]
    try:
        for round_, entries in enumerate(([JWK], [JWK, ACME])):
            results = run_threads(len(stores), lambda i, entries=entries, round_=round_: record_provisioner_changes(
                stores[i], entries, authority_id="auth-race", now=T0 + dt.timedelta(minutes=round_), sinks=[sinks[i]]))
            assert sum(r is not None for r in results) == 1, results
        logged = changed_events(stores[0])
        assert len(logged) == 2
        assert sorted(e.id for s in sinks for e in s.seen) == sorted(e.id for e in logged)
    finally:
        for s in stores:
            s.close()
