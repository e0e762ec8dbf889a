"""The memory store's event log: events by id, and their `(time, id)` keys kept sorted.

Split from `shared.store.memory` by concern. Issuance and revocation append their events
through `_add_events` inside their own locked call, so a fact and its events land together.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Sequence

from shared.model import Event
from shared.store import codec


class MemoryEvents:
    """The `EventLog` role (`MemoryStore.__init__` creates the containers)."""

    _lock: threading.RLock
    _event_keys: list[tuple[int, str]]
    _events: dict[str, Event]

    def append_events(self, events: Sequence[Event]) -> None:
        """Append events; an id already logged is ignored (retries are idempotent)."""
        normalised = [codec.event_from_row(codec.event_to_row(e)) for e in events]
        with self._lock:
            self._add_events(normalised)

    def list_events(self, *, since: dt.datetime | None = None, limit: int = 100) -> Sequence[Event]:
        """Return events with time >= `since`, ordered by (time, id)."""
        if limit <= 0:
            return []
        start_key = (codec.to_epoch_us(since, "since"), "") if since is not None else None
        with self._lock:
            start = bisect.bisect_left(self._event_keys, start_key) if start_key else 0
            keys = self._event_keys[start : start + limit]
            return [self._events[event_id] for _, event_id in keys]

    def _add_events(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.id in self._events:
                continue
            self._events[event.id] = event
            bisect.insort(self._event_keys, (codec.to_epoch_us(event.time), event.id))
