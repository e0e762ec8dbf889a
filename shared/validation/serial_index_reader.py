"""The responder's side of the published serial index: "was this serial ever issued?".

`shared.validation.serial_index` explains the index and writes it; this module only
reads it, so the `ocsp` function (which may read the CRL bucket and nothing else)
loads no publisher code. `PublishedSerials` caches each authority's verified index
per manifest generation and looks for a newer one at most every `recheck`; an
artefact that fails its integrity check is refused, counted in `failures`, and the
last good index keeps serving. `StoreSerials` answers from the database instead,
for setups where the responder may read it (tests, one process).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from shared.blobs.base import BlobStore
from shared.clock import Clock
from shared.errors import BackendError
from shared.store.base import CertificateReader
from shared.validation.serial_index_format import (
    InvalidIndex,
    Manifest,
    Segment,
    SortedSerials,
    manifest_name,
    verify_segment,
)

_log = logging.getLogger("shared.validation.serial_index")  # one logger name for the whole index


@dataclass(frozen=True, slots=True)
class LoadedIndex:
    """A verified index: membership is a binary search in each part."""

    generation: int
    parts: tuple[SortedSerials, ...]
    names: frozenset[str]

    def __contains__(self, serial: object) -> bool:
        return any(serial in part for part in self.parts)


@dataclass(slots=True)
class _Slot:
    index: LoadedIndex | None = None
    checked_at: dt.datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class PublishedSerials:
    """The responder's view of the published indexes, cached per manifest generation.

    Satisfies `shared.validation.ocsp.IssuedSerials`.
    """

    def __init__(self, *, blobs: BlobStore, clock: Clock, recheck: dt.timedelta = dt.timedelta(seconds=60)) -> None:
        """Read from `blobs`, looking for a new manifest generation at most every `recheck`."""
        self._blobs = blobs
        self._clock = clock
        self._recheck = recheck
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._segments: dict[str, tuple[str, SortedSerials]] = {}  # name -> (sha256, serials)
        self.failures = 0

    def is_issued(self, authority_id: str, serial: int) -> bool:
        """Whether the published index lists `serial` for the authority.

        Raises:
            BackendError: no index has been published or could be read yet
                (the responder answers tryLater rather than guess).
        """
        with self._slots_lock:
            slot = self._slots.setdefault(authority_id, _Slot())
        now = self._clock.now()
        index = slot.index
        if index is None or slot.checked_at is None or now - slot.checked_at >= self._recheck:
            with slot.lock:
                if slot.checked_at is None or now - slot.checked_at >= self._recheck:
                    self._refresh(slot, authority_id, now)
                index = slot.index
        if index is None:
            raise BackendError(f"no serial index published for {authority_id}", transient=True)
        return serial in index

    def _refresh(self, slot: _Slot, aid: str, now: dt.datetime) -> None:
        name = manifest_name(aid)
        try:
            blob = self._blobs.read(name)
        except BackendError as exc:
            _log.warning("cannot read %s, serving the last good index: %s", name, exc)
            return
        slot.checked_at = now
        if blob is None or (slot.index is not None and blob.generation == slot.index.generation):
            return
        try:
            manifest = Manifest.decode(blob.data, aid)
            parts = [SortedSerials(manifest.tail)]
            for segment in manifest.segments:
                parts.append(self._segment(segment))
        except (InvalidIndex, BackendError) as exc:
            self.failures += 1
            _log.error("refused %s generation %d: %s", name, blob.generation, exc)
            return
        names = frozenset(s.name for s in manifest.segments)
        slot.index = LoadedIndex(blob.generation, tuple(parts), names)
        live: set[str] = set().union(*(s.index.names for s in self._slots.values() if s.index is not None))
        for stale in [n for n in self._segments if n not in live]:
            del self._segments[stale]

    def _segment(self, segment: Segment) -> SortedSerials:
        cached = self._segments.get(segment.name)
        if cached is not None and cached[0] == segment.sha256:
            return cached[1]
        blob = self._blobs.read(segment.name)
        if blob is None:
            raise InvalidIndex(f"{segment.name} is missing")
        loaded = verify_segment(segment, blob.data)
        self._segments[segment.name] = (segment.sha256, loaded)
        return loaded


class StoreSerials:
    """`IssuedSerials` answered from the store directly.

    Only for setups where the responder may read the database (tests, a
    single process); deployments use `PublishedSerials`, which needs nothing
    but the published artefacts.
    """

    def __init__(self, reader: CertificateReader) -> None:
        """Ask `reader` for each serial."""
        self._reader = reader

    def is_issued(self, authority_id: str, serial: int) -> bool:
        """Whether the store holds an X.509 certificate of the authority with this serial."""
        record = self._reader.get_certificate(str(serial))
        return record is not None and record.authority_id == authority_id and str(record.kind) == "x509"
