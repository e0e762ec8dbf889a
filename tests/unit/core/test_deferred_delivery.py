"""`TrackedSink` and a sink that defers some events to the sweep (`deferred_of`).

The linked sink defers the report of a revocation the central asked for, because the central is
waiting on that very request (shared.linked.sink); these tests pin the tracking side on a real
memory store: a deferred event is not attempted in the request, does not pause the sink, is kept
due at once, and the next sweep delivers it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from shared.clock import FixedClock
from shared.events.delivery import COLLECTION, TrackedSink, redeliver, sink_id
from shared.model import Event
from shared.store.memory import MemoryStore

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def event(event_id: str, *, later: bool = False) -> Event:
    return Event(id=event_id, type="dev.cirrus.certificate.revoked", source="cirrus-ca/a", subject="1", time=T0,
                 data={"serial": "1", "later": later})  # fmt: skip


class Deferring:
    """Takes everything it is given; asks to defer events marked `later`."""

    def __init__(self) -> None:
        self.got: list[str] = []

    def deferred_of(self, events: Sequence[Event]) -> list[Event]:
        return [e for e in events if e.data.get("later")]

    def publish(self, events: Sequence[Event]) -> None:
        self.got.extend(e.id for e in events)


def test_a_deferred_event_is_kept_for_the_sweep_without_an_attempt_or_a_pause() -> None:
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    sink = Deferring()
    tracked = TrackedSink(sink=sink, name="linked:https://central", documents=store, clock=clock)

    tracked.publish([event("now-1"), event("later-1", later=True)])  # no exception: nothing failed
    assert sink.got == ["now-1"]
    record, _ = store.get_document(COLLECTION, f"{sink_id(tracked.name)}-later-1") or ({}, 0)
    assert record["state"] == "pending" and record["attempts"] == 0 and record["next"] == T0.isoformat()
    tracked.publish([event("now-2")])  # not paused: a deferral is not a failure
    assert sink.got == ["now-1", "now-2"]
    tracked.publish([event("later-2", later=True)])  # only deferred events: nothing attempted now
    assert sink.got == ["now-1", "now-2"]

    result = redeliver([tracked], now=T0)  # due at once: the very next sweep
    assert (result.delivered, result.retrying, result.dead) == (2, 0, 0)
    assert sink.got == ["now-1", "now-2", "later-1", "later-2"]
    assert redeliver([tracked], now=T0 + dt.timedelta(hours=1)).delivered == 0  # once each
