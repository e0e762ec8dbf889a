"""The memory store's revocations: one per revoked serial, recorded with its events and usage.

Split from `shared.store.memory` by concern.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from shared.errors import AlreadyRevoked
from shared.model import Event, Revocation
from shared.store import codec
from shared.store.memory_events import MemoryEvents
from shared.store.memory_usage import MemoryUsage


class MemoryRevocations(MemoryUsage, MemoryEvents):
    """Revocation reads (CRL, OCSP) and the revoke write."""

    def get_revocation(self, serial: str) -> Revocation | None:
        """Return the revocation of a serial, or None."""
        with self._lock:
            return self._revocations.get(serial)

    def revoked_since(self, since: dt.datetime) -> bool:
        """Whether any revocation has `revoked_at` at or after `since`."""
        with self._lock:
            return any(r.revoked_at >= since for r in self._revocations.values())

    def list_revocations(
        self, authority_id: str, *, not_after_since: dt.datetime
    ) -> Sequence[Revocation]:
        """Return an authority's revocations expiring at or after `not_after_since`."""
        since = codec.require_aware(not_after_since, "not_after_since")
        with self._lock:
            found = [
                r
                for r in self._revocations.values()
                if r.authority_id == authority_id and r.not_after >= since
            ]
        return sorted(found, key=lambda r: (r.not_after, r.serial))

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Record a revocation and its events, or raise AlreadyRevoked."""
        rev = codec.revocation_from_row(codec.revocation_to_row(revocation))
        normalised = [codec.event_from_row(codec.event_to_row(e)) for e in events]
        with self._lock:
            if rev.serial in self._revocations:
                raise AlreadyRevoked(rev.serial)
            self._revocations[rev.serial] = rev
            self._meter_revocation(rev)
            self._add_events(normalised)
