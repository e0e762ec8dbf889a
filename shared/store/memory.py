"""An in-process `Store` for unit tests and the fast development loop.

It behaves like the durable backends in everything the contract suite checks
(create-if-absent, conflicts, ordering, compare-and-set, UTC datetimes,
rejection of naive datetimes and non-JSON data), so code tested against it
behaves the same on SQLite or Firestore. One lock serialises every call, which
makes each method atomic across threads; nothing is shared across processes.

Records go through the same row codec as SQLite on the way in, so a record
read back is normalised exactly as a durable backend would return it.

The roles live in one module per concern, mixed into `MemoryStore`: issuance
(`memory_issuance`), revocations (`memory_revocations`), usage (`memory_usage`), events
(`memory_events`), documents (`memory_documents`) and inventories (`memory_inventory`);
this module holds the state they share, the token ledger and counters.
"""

from __future__ import annotations

import datetime as dt
import threading

from shared import metering
from shared.clock import Clock, SystemClock
from shared.model import CertificateRecord, Endpoint, Event, Revocation
from shared.store import codec
from shared.store.memory_documents import MemoryDocuments
from shared.store.memory_inventory import MemoryInventories
from shared.store.memory_issuance import MemoryIssuance
from shared.store.memory_revocations import MemoryRevocations


class MemoryStore(MemoryIssuance, MemoryRevocations, MemoryDocuments, MemoryInventories):
    """Every storage role, held in dictionaries behind one lock."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._claims: dict[tuple[str, str], int] = {}
        self._certificates: dict[str, CertificateRecord] = {}
        self._by_endpoint: dict[str, list[tuple[int, str]]] = {}
        self._endpoints: dict[str, Endpoint] = {}
        self._revocations: dict[str, Revocation] = {}
        self._event_keys: list[tuple[int, str]] = []
        self._events: dict[str, Event] = {}
        self._counters: dict[str, int] = {}
        # (collection, id) -> (JSON text, version, expires_at in epoch us or None)
        self._documents: dict[tuple[str, str], tuple[str, int, int | None]] = {}
        # (month, endpoint id) -> usage, authority id, name (`shared.metering`)
        self._usage: dict[tuple[str, str], tuple[metering.MonthUsage, str, str]] = {}
        self._inventories = {}  # `memory_inventory`
        self._closed = False

    # ----------------------------------------------------------------- TokenLedger

    def claim(self, namespace: str, key: str, expires_at: dt.datetime) -> bool:
        """Create `(namespace, key)` if absent; True only for the creator."""
        expires_us = codec.to_epoch_us(expires_at, "expires_at")
        with self._lock:
            if (namespace, key) in self._claims:
                return False
            self._claims[(namespace, key)] = expires_us
            return True

    def purge_expired(self, now: dt.datetime) -> int:
        """Delete claims that expired before `now`."""
        now_us = codec.to_epoch_us(now, "now")
        with self._lock:
            stale = [k for k, exp in self._claims.items() if exp < now_us]
            for k in stale:
                del self._claims[k]
            return len(stale)

    # ----------------------------------------------------------------- counters

    def next_value(self, name: str) -> int:
        """Increment and return the named counter (first value 1)."""
        with self._lock:
            value = self._counters.get(name, 0) + 1
            self._counters[name] = value
            return value

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Nothing to release; kept for the `Store` protocol."""
        self._closed = True


def from_url(url: str, *, clock: Clock) -> MemoryStore:
    """Open a `memory:` URL (each call is a new, empty store)."""
    return MemoryStore(clock=clock)
