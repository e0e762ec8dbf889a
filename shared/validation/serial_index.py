"""The published index of issued serials: the OCSP responder's "was it ever issued?".

OCSP-07 forbids answering `good` for a serial that was never issued, and the
responder may only read what the validation authority publishes (in the cloud
the `ocsp` function can read the CRL bucket and nothing else). So next to the
CRLs the publisher writes, per authority, an index of every X.509 serial
issued and not yet long expired:

- Segments `ocsp-index/<id>/seg-<time>-<random>.bin`: immutable, the serials
  as sorted 20-byte big-endian integers (RFC 5280 serials are below 2^159), so
  the responder binary-searches the bytes without parsing or building a set
  (a million serials are 20 MB, not the ~100 MB a Python set of ints takes).
- The manifest `ocsp-index/<id>/index.json`: the segment list (name, count,
  SHA-256, first/last issuance, latest notAfter), a small *tail* of the most
  recent serials inline (so a routine run rewrites one small object, not a
  segment), and the cursor: the highest `(issued_at, serial)` indexed.

Scale: a run asks the store only for certificates issued after the cursor
(`IssuedSince.list_serials_issued_since`, paged by `(issued_at, serial)`), so
its cost follows the new issuances, never the total. When the tail would grow
past `tail_entries` it is sealed into segments. Segments whose certificates
have all been expired for `retain_after_expiry` are dropped, and while there
are more than `max_segments` the smallest adjacent pair is merged (adjacent
in issuance time, so a merged segment still expires as one).

Clean-up: a segment the new manifest stops naming (dropped or merged) is
listed under the manifest's `retired` with the time, and deleted by the first
publication after `retired_grace` (1 hour: a responder re-reads the manifest
every minute, so none still needs it); the manifest forgets it in the same
write, so the deletion happens once. A segment sealed and merged again within
one run, or sealed by a publisher whose manifest write then lost, is named by
no manifest and is deleted at once. A delete that fails is logged and left to
the bucket's lifecycle rule (terraform/modules/cirrus/storage.tf), which
removes index segments older than any certificate can live.

Races, two of them:
- Several publishers (the schedule, `cirrus crl publish`, publish-on-revoke):
  every manifest write carries the generation it was computed from, and a
  loser re-reads and recomputes. Segments are written under fresh names with
  "must not exist" before the manifest that names them, so a published
  manifest never points at a missing or different segment; a loser deletes
  the segments it sealed (no manifest names them) and starts again.
- Late commits: `issued_at` is taken before the record is durably written,
  so a certificate can appear in the store with a timestamp below a cursor
  another run already passed. Each run therefore re-reads from `cursor -
  overlap` and skips serials already indexed; `overlap` must exceed the
  longest sign-to-commit time plus clock skew between instances (the store's
  retry deadline is 10 s; the default is 2 minutes). A publisher that runs
  often (`cirrus up`'s, every few seconds) looks back only `quick_overlap`
  and the whole `overlap` once every `full_overlap_every`: re-reading two
  minutes of issuances every 5 s read each certificate 24 times, most of the
  master process's CPU under load. A certificate committed later than the
  quick look-back is indexed by the next full run, within a minute.

Freshness (OCSP-08: status authoritative within 15 minutes of issuance): a
new certificate is `unknown` until the next publication plus the responder's
recheck interval. Publish at least every few minutes; `cirrus up` publishes
the index every few seconds, and the `crl_publish` schedule must run at least every
15 minutes minus the responder's recheck (60 s in the cloud).

The index is not signed: it only tells the responder whether to say `good`
or `unknown` for a serial the CRL does not list, and only the publisher can
write the bucket. Integrity is checked (segment SHA-256 and size from the
manifest); an artefact that fails is refused, counted in `failures`, and the
last good index keeps serving.

This module is the publication (the cursor reads, the next manifest, its
conditional write); `serial_index_segments` writes, reads and deletes the
segments, `serial_index_reader` is the responder's side and `serial_index_format`
the bytes. `PublishedSerials` and `StoreSerials` are re-exported here.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shared.blobs.base import BlobStore, PreconditionFailed
from shared.clock import Clock
from shared.errors import BackendError, ConfigError
from shared.validation.serial_index_format import (
    MANIFEST_CONTENT_TYPE,
    SERIAL_BYTES,
    InvalidIndex,
    Manifest,
    Segment,
    SortedSerials,
    manifest_name,
    pack_serials,
)
from shared.validation.serial_index_reader import PublishedSerials, StoreSerials
from shared.validation.serial_index_segments import IndexSegments

__all__ = [
    "SERIAL_BYTES",
    "IndexResult",
    "InvalidIndex",
    "IssuedSince",
    "Manifest",
    "PublishedSerials",
    "Segment",
    "SerialIndexPublisher",
    "SortedSerials",
    "StoreSerials",
    "manifest_name",
    "pack_serials",
]

_WRITE_ATTEMPTS = 20
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_log = logging.getLogger(__name__)

IssuedRow = tuple[dt.datetime, str, dt.datetime, str]  # issued_at, serial, not_after, kind


@runtime_checkable
class IssuedSince(Protocol):
    """New issuances of one authority, by `(issued_at, serial)` cursor (all stores have it)."""

    def list_serials_issued_since(
        self, authority_id: str, since: dt.datetime, *, limit: int = 1000, after_serial: str = ""
    ) -> Sequence[IssuedRow]:
        """Rows with `(issued_at, serial) > (since, after_serial)`, in that order, at most `limit`."""
        ...


# --------------------------------------------------------------------------- publishing


@dataclass(frozen=True, slots=True)
class IndexResult:
    """What one publication did for one authority."""

    authority_id: str
    blob_name: str
    added: int
    total: int
    segments: int
    generation: int | None  # None: nothing changed, nothing written


@dataclass(slots=True)
class _Pending:
    """New serials of this run with their issuance span, in issuance order."""

    serials: list[int] = field(default_factory=list)
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    not_after: dt.datetime | None = None

    def add(self, serial: int, issued_at: dt.datetime, not_after: dt.datetime) -> None:
        self.serials.append(serial)
        self.first = issued_at if self.first is None else min(self.first, issued_at)
        self.last = issued_at if self.last is None else max(self.last, issued_at)
        self.not_after = not_after if self.not_after is None else max(self.not_after, not_after)


class SerialIndexPublisher:
    """Keeps each authority's published serial index up to date, incrementally."""

    def __init__(
        self,
        *,
        issued: IssuedSince,
        blobs: BlobStore,
        clock: Clock,
        authority_ids: Sequence[str],
        overlap: dt.timedelta = dt.timedelta(minutes=2),
        quick_overlap: dt.timedelta | None = None,
        full_overlap_every: dt.timedelta = dt.timedelta(minutes=1),
        retain_after_expiry: dt.timedelta = dt.timedelta(days=1),
        retired_grace: dt.timedelta = dt.timedelta(hours=1),
        tail_entries: int = 4096,
        segment_entries: int = 262_144,
        max_segments: int = 16,
        page: int = 5000,
    ) -> None:
        """Wire the publisher.

        Args:
            issued: the store query for new issuances.
            blobs: where the index is published (the CRLs' blob store).
            clock: for expiry and the manifest's `updated`.
            authority_ids: the authorities indexed.
            overlap: how far before the cursor each run looks again (late commits).
            quick_overlap: if set, how far a run looks back when this publisher already
                looked back the whole `overlap` less than `full_overlap_every` ago.
            full_overlap_every: how often a publisher with `quick_overlap` looks back fully.
            retain_after_expiry: how long after its last certificate expires a segment is kept.
            retired_grace: how long a segment no manifest names any more stays in the bucket
                before it is deleted (readers re-read the manifest every minute or so).
            tail_entries: the most serials kept inline in the manifest.
            segment_entries: the most serials one segment gets (sealing and merging).
            max_segments: merge adjacent segments while there are more.
            page: rows per store query.
        """
        if tail_entries < 1 or segment_entries < tail_entries or max_segments < 1 or page < 1:
            raise ConfigError("serial index sizes must be positive, segments at least the tail size")
        if overlap < dt.timedelta(0) or retain_after_expiry < dt.timedelta(0) or retired_grace < dt.timedelta(0):
            raise ConfigError("serial index overlap and retention must not be negative")
        if quick_overlap is not None and not dt.timedelta(0) <= quick_overlap <= overlap:
            raise ConfigError("serial index quick overlap must be between zero and the overlap")
        for aid in authority_ids:
            manifest_name(aid)  # validates the id
        self._issued = issued
        self._blobs = blobs
        self._clock = clock
        self.authority_ids = tuple(authority_ids)
        self._overlap = overlap
        self._quick_overlap = quick_overlap
        self._full_every = full_overlap_every
        self._full_at: dict[str, dt.datetime] = {}  # when each authority's last full look-back ran
        self._retain = retain_after_expiry
        self._retired_grace = retired_grace
        self._segments = IndexSegments(blobs=blobs, retain_after_expiry=retain_after_expiry,
                                       segment_entries=segment_entries, max_segments=max_segments)
        self._unnamed: list[str] = []  # segments the current attempt sealed that its manifest does not name
        self._tail_entries = tail_entries
        self._page = page

    def publish(self, authority_id: str | None = None) -> list[IndexResult]:
        """Bring the index of one authority, or of all, up to date."""
        if authority_id is not None and authority_id not in self.authority_ids:
            raise ConfigError(f"no serial index for authority {authority_id!r}")
        targets = [authority_id] if authority_id is not None else list(self.authority_ids)
        return [self._publish_authority(aid) for aid in targets]

    def _publish_authority(self, aid: str) -> IndexResult:
        started = self._clock.now()
        full_at = self._full_at.get(aid)
        full = self._quick_overlap is None or full_at is None or started - full_at >= self._full_every
        result = self._publish_with(aid, self._overlap if full or self._quick_overlap is None else self._quick_overlap)
        if full:
            self._full_at[aid] = started
        return result

    def _publish_with(self, aid: str, overlap: dt.timedelta) -> IndexResult:
        name = manifest_name(aid)
        attempt = 0
        for _ in range(_WRITE_ATTEMPTS):
            blob = self._blobs.read(name)
            generation = 0 if blob is None else blob.generation
            current = Manifest(aid)
            if blob is not None:
                try:
                    current = Manifest.decode(blob.data, aid)
                except InvalidIndex as exc:
                    # Never rebuild silently from an unreadable manifest: that would need the whole
                    # store and could hide tampering. An operator removes the object to rebuild.
                    raise BackendError(f"{name}: published manifest is unreadable: {exc}") from exc
            self._segments.sealed, self._unnamed = [], []
            updated, added = self._next(current, overlap)
            if updated is None:
                return IndexResult(aid, name, 0, current.count, len(current.segments), None)
            due = sorted({n for n, _ in current.retired} - {n for n, _ in updated.retired})
            try:
                written = self._blobs.write(
                    name,
                    updated.encode(),
                    content_type=MANIFEST_CONTENT_TYPE,
                    if_generation_match=generation,
                    cache_control="no-cache",
                )
            except PreconditionFailed:
                # Another publisher got there first: the segments this attempt sealed are named
                # by no manifest, so they go now; back off a little (jittered, so racing
                # publishers spread out) and start again from its manifest.
                self._segments.delete(self._segments.sealed, "unpublished")
                self._segments.forget(self._segments.sealed)
                attempt += 1
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))  # noqa: S311 - jitter, not a secret
                continue
            self._segments.delete(due, "retired")  # only once the manifest that forgets them is out
            self._segments.delete(self._unnamed, "unpublished")
            return IndexResult(aid, name, added, updated.count, len(updated.segments), written)
        raise BackendError(f"{name}: gave up after {_WRITE_ATTEMPTS} conflicting writes", transient=True)

    def _next(self, current: Manifest, overlap: dt.timedelta) -> tuple[Manifest | None, int]:
        """The manifest after this run (None if nothing changed) and how many serials it adds."""
        aid = current.authority_id
        now = self._clock.now()
        pending, cursor = self._read_new(current, overlap)
        segments = list(current.segments)
        tail, tail_first, tail_not_after = current.tail, current.tail_first_issued, current.tail_not_after
        changed = bool(pending.serials) or cursor != (current.cursor_time, current.cursor_serial)
        if pending.serials:
            assert pending.first is not None and pending.last is not None and pending.not_after is not None
            tail_count = len(tail) // SERIAL_BYTES
            if tail_count + len(pending.serials) <= self._tail_entries:
                tail = pack_serials([*SortedSerials(tail), *pending.serials])
                tail_first = min(tail_first or pending.first, pending.first)
                tail_not_after = max(tail_not_after or pending.not_after, pending.not_after)
            else:
                if tail:
                    assert tail_first is not None and tail_not_after is not None
                    last = current.cursor_time or tail_first
                    segments.append(self._segments.seal(aid, list(SortedSerials(tail)), tail_first, last,
                                                        tail_not_after))
                segments.extend(self._segments.seal_chunks(aid, pending.serials, pending.first, pending.last,
                                                           pending.not_after))
                tail, tail_first, tail_not_after = b"", None, None
        if tail_not_after is not None and tail_not_after < now - self._retain:
            tail, tail_first, tail_not_after, changed = b"", None, None, True
        compacted = self._segments.compact(aid, segments, now)
        changed = changed or compacted != list(current.segments)
        # Segments this manifest stops naming are retired now and deleted after the grace period
        # (a reader may hold the previous manifest that long); the manifest itself keeps the list,
        # so whichever publisher writes after the grace deletes them, exactly once.
        kept = {s.name for s in compacted}
        dropped = [s.name for s in current.segments if s.name not in kept]
        # merged again within this run: named by no manifest, deleted once this one is out
        self._unnamed = [n for n in self._segments.sealed if n not in kept]
        cutoff = now - self._retired_grace
        retired = tuple((n, at) for n, at in current.retired if at > cutoff) + tuple((n, now) for n in dropped)
        changed = changed or retired != current.retired
        if not changed and current.updated is not None:
            return None, 0
        updated = Manifest(
            authority_id=aid,
            segments=tuple(compacted),
            tail=tail,
            tail_first_issued=tail_first,
            tail_not_after=tail_not_after,
            cursor_time=cursor[0],
            cursor_serial=cursor[1],
            updated=now,
            retired=retired,
        )
        return updated, len(pending.serials)

    def _read_new(
        self, current: Manifest, overlap: dt.timedelta
    ) -> tuple[_Pending, tuple[dt.datetime | None, str]]:
        """Issuances from `cursor - overlap` on that the index does not hold yet."""
        cursor: tuple[dt.datetime | None, str] = (current.cursor_time, current.cursor_serial)
        start = _EPOCH if current.cursor_time is None else current.cursor_time - overlap
        known = self._recent_serials(current, start)
        pending = _Pending()
        page_time, page_serial = start, ""
        while True:
            rows = self._issued.list_serials_issued_since(
                current.authority_id, page_time, limit=self._page, after_serial=page_serial
            )
            for issued_at, serial_text, not_after, kind in rows:
                if cursor[0] is None or (issued_at, serial_text) > (cursor[0], cursor[1]):
                    cursor = (issued_at, serial_text)
                if kind != "x509":
                    continue
                serial = int(serial_text)
                if serial in known:
                    continue
                known.add(serial)
                pending.add(serial, issued_at, not_after)
            if len(rows) < self._page:
                return pending, cursor
            page_time, page_serial = rows[-1][0], rows[-1][1]

    def _recent_serials(self, current: Manifest, start: dt.datetime) -> set[int]:
        """Serials already indexed that the overlap window may return again."""
        known = set(SortedSerials(current.tail))
        for segment in current.segments:
            if segment.last_issued >= start:
                known.update(self._segments.load(segment))
        return known
