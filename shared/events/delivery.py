"""At-least-once delivery to sinks that can fail (webhook, Pub/Sub).

Every event is in the store's event log before any sink sees it. A sink that
fails must not lose it, so `TrackedSink` records each event a sink did not
take as a pending delivery document (collection `event_deliveries`, one per
sink and event). The sweep (`redeliver`) retries those with exponential
backoff; after `max_attempts` a delivery becomes `dead` (the dead-letter
record an operator can list) and an error line is logged.

Several sweep instances may run at once: a delivery is taken by a
compare-and-set that pushes its next attempt past a lease, so only one
instance delivers it per attempt. A receiver may still see an event twice (a
lost answer), and de-duplicates by the CloudEvents `id`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.errors import BackendError
from shared.events.base import EventSink
from shared.model import Event

COLLECTION = "event_deliveries"
MAX_ATTEMPTS = 8
#: Delivery records are kept this long (delivered or dead), then purged like other documents.
KEEP = dt.timedelta(days=30)
#: How long a sweep instance holds a delivery it is attempting.
LEASE = dt.timedelta(minutes=2)

_log = logging.getLogger("cirrus.events")


class DeliveryDocuments(Protocol):
    """The document roles delivery tracking uses (a narrow view of the store)."""

    def create_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expires_at: dt.datetime | None = None
    ) -> bool:
        """Create if absent."""
        ...

    def update_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int
    ) -> bool:
        """Compare-and-set replace."""
        ...

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Documents whose top-level field equals value."""
        ...


class FallibleSink(EventSink, Protocol):
    """A sink that can say which events of a batch it did not take (optional refinement)."""

    def failed_of(self, events: Sequence[Event]) -> list[Event]:
        """Deliver and return the events not taken."""
        ...


class DeferringSink(EventSink, Protocol):
    """A sink that must not deliver some events inside the request that raised them (optional)."""

    def deferred_of(self, events: Sequence[Event]) -> list[Event]:
        """The events to leave to the sweep."""
        ...


def sink_id(name: str) -> str:
    """A short stable id for a sink spec (the spec itself may be long)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def _event_from_json(text: str) -> Event:
    raw = json.loads(text)
    return Event(
        id=raw["id"], type=raw["type"], source=raw["source"], subject=raw["subject"],
        time=dt.datetime.fromisoformat(raw["time"].replace("Z", "+00:00")), data=raw.get("data") or {},
    )  # fmt: skip


def backoff(attempts: int) -> dt.timedelta:
    """Pause before the next attempt: 1 min, 2, 4 ... capped at 4 h."""
    pause: dt.timedelta = min(dt.timedelta(minutes=1) * (2 ** max(0, attempts - 1)), dt.timedelta(hours=4))
    return pause


@dataclass
class TrackedSink:
    """Wraps a sink so what it fails to take is kept for re-delivery.

    A sink runs in the issuing request's path, so one that is down must not slow every
    issuance by its timeout: after a failure the sink is paused for `pause` seconds, and
    events in that time are kept for the sweep at once, without trying (a circuit breaker).
    """

    sink: EventSink
    name: str
    documents: DeliveryDocuments
    clock: Any  # shared.clock.Clock
    pause: float = 30.0
    monotonic: Callable[[], float] = time.monotonic
    _paused_until: float = field(default=0.0, init=False, repr=False)

    def publish(self, events: Sequence[Event]) -> None:
        """Deliver; record what was not taken; raise if anything was not.

        Events the sink asks to defer (`DeferringSink`) are recorded due at once and left to
        the sweep, without an attempt here and without pausing the sink."""
        deferred_of = getattr(self.sink, "deferred_of", None)
        deferred: list[Event] = deferred_of(events) if deferred_of is not None else []
        if deferred:
            self._keep(deferred, attempts=0, due=self.clock.now())
            later = {e.id for e in deferred}
            events = [e for e in events if e.id not in later]
            if not events:
                return
        if self.monotonic() < self._paused_until:
            failed = list(events)  # the sink failed moments ago: keep these for the sweep
        else:
            failed = self._attempt(events)
            if failed:
                self._paused_until = self.monotonic() + self.pause
        if not failed:
            return
        now = self.clock.now()
        self._keep(failed, attempts=1, due=now + backoff(1))
        raise BackendError(f"event sink {sink_id(self.name)}: {len(failed)} events kept for re-delivery")

    def _keep(self, events: Sequence[Event], *, attempts: int, due: dt.datetime) -> None:
        """Record each event as a pending delivery the sweep makes from `due` on."""
        now = self.clock.now()
        for event in events:
            self.documents.create_document(
                COLLECTION,
                f"{sink_id(self.name)}-{event.id}",
                {"sink": sink_id(self.name), "state": "pending", "attempts": attempts, "eventId": event.id,
                 "eventType": event.type, "next": due.isoformat(), "event": event.to_cloudevent_json()},
                expires_at=now + KEEP,
            )  # fmt: skip

    def _attempt(self, events: Sequence[Event]) -> list[Event]:
        failed_of = getattr(self.sink, "failed_of", None)
        try:
            if failed_of is not None:
                result: list[Event] = failed_of(events)
                return result
            self.sink.publish(events)
            return []
        except Exception:  # any failure of an outside system: keep all for re-delivery
            return list(events)


@dataclass(frozen=True, slots=True)
class RedeliveryResult:
    """What one sweep did."""

    delivered: int
    retrying: int
    dead: int


def redeliver(sinks: Sequence[TrackedSink], *, now: dt.datetime, limit: int = 500,
              max_attempts: int = MAX_ATTEMPTS) -> RedeliveryResult:  # fmt: skip
    """Retry the pending deliveries that are due, for every tracked sink."""
    delivered = retrying = dead = 0
    by_id = {sink_id(s.name): s for s in sinks}
    if not sinks:
        return RedeliveryResult(0, 0, 0)
    documents = sinks[0].documents
    for doc_id, data, version in documents.find_documents(COLLECTION, "state", "pending", limit=limit):
        sink = by_id.get(str(data.get("sink")))
        if sink is None or dt.datetime.fromisoformat(str(data["next"])) > now:
            continue
        attempts = int(data.get("attempts", 1)) + 1
        taken = {**data, "attempts": attempts, "next": (now + LEASE).isoformat()}
        if not documents.update_document(COLLECTION, doc_id, taken, expected_version=version):
            continue  # another instance took it
        event = _event_from_json(str(data["event"]))
        ok = not sink._attempt([event])
        if ok:
            final = {**taken, "state": "delivered", "deliveredAt": now.isoformat()}
            delivered += 1
        elif attempts >= max_attempts:
            final = {**taken, "state": "dead", "deadAt": now.isoformat()}
            dead += 1
            _log.error(json.dumps({"event": "event dead-lettered", "sink": sink_id(sink.name), "eventId": event.id,
                                   "type": event.type, "attempts": attempts}))  # fmt: skip
        else:
            final = {**taken, "next": (now + backoff(attempts)).isoformat()}
            retrying += 1
        documents.update_document(COLLECTION, doc_id, final, expected_version=version + 1)
    return RedeliveryResult(delivered, retrying, dead)


def track(sinks: Sequence[tuple[str, EventSink]], documents: DeliveryDocuments, clock: Any) -> list[EventSink]:
    """Wrap the sinks that can fail; the log sink writes locally and is left as is."""
    wrapped: list[EventSink] = []
    for name, sink in sinks:
        wrapped.append(sink if name == "log" else TrackedSink(sink=sink, name=name, documents=documents, clock=clock))
    return wrapped
