"""The serial index's segments: sealing, loading, merging and deleting them.

`shared.validation.serial_index` decides what the next manifest says (the cursor,
the tail, which segments it names); this module owns the immutable segment objects
in the bucket that a manifest points at. It exists apart because segments have
rules of their own: each is written once under a fresh name with "must not exist"
(so no published manifest ever names a missing or changed one), verified against
the manifest's SHA-256 and size when read back, cached by name (immutable), and
deleted only when no published manifest names it, a failed delete being left to
the bucket's lifecycle rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Sequence

from shared.blobs.base import BlobStore, PreconditionFailed
from shared.errors import BackendError
from shared.validation.serial_index_format import (
    SEGMENT_CONTENT_TYPE,
    SERIAL_BYTES,
    InvalidIndex,
    Segment,
    SortedSerials,
    manifest_name,
    pack_serials,
    verify_segment,
)

_log = logging.getLogger("shared.validation.serial_index")  # one logger name for the whole index


class IndexSegments:
    """The publisher's segments: writes, a cache by name, and the names one attempt sealed."""

    def __init__(
        self, *, blobs: BlobStore, retain_after_expiry: dt.timedelta, segment_entries: int, max_segments: int
    ) -> None:
        """Write to `blobs`; `SerialIndexPublisher` documents the limits."""
        self._blobs = blobs
        self._retain = retain_after_expiry
        self._segment_entries = segment_entries
        self._max_segments = max_segments
        self.sealed: list[str] = []  # segments written by the current attempt
        self._cache: dict[str, SortedSerials] = {}  # immutable, so cached by name

    def load(self, segment: Segment) -> SortedSerials:
        """The serials of a segment a manifest names, verified against it.

        Raises:
            BackendError: the segment is missing or does not match the manifest.
        """
        cached = self._cache.get(segment.name)
        if cached is not None:
            return cached
        blob = self._blobs.read(segment.name)
        if blob is None:
            raise BackendError(f"{segment.name}: segment named by the manifest is missing")
        try:
            loaded = verify_segment(segment, blob.data)
        except InvalidIndex as exc:
            raise BackendError(str(exc)) from exc
        self._cache[segment.name] = loaded
        return loaded

    def seal_chunks(
        self, aid: str, serials: list[int], first: dt.datetime, last: dt.datetime, not_after: dt.datetime
    ) -> list[Segment]:
        """Write new serials as segments of at most `segment_entries`, in issuance order."""
        size = self._segment_entries
        out = []
        for i in range(0, len(serials), size):
            # the span of the whole run: exact per-chunk times are not kept, and wider is safe
            out.append(self.seal(aid, serials[i : i + size], first, last, not_after))
        return out

    def seal(
        self, aid: str, serials: list[int], first: dt.datetime, last: dt.datetime, not_after: dt.datetime
    ) -> Segment:
        """Write one segment under a fresh name ("must not exist") and remember it as sealed."""
        data = pack_serials(serials)
        stamp = first.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S")
        name = f"{manifest_name(aid).rsplit('/', 1)[0]}/seg-{stamp}-{secrets.token_hex(6)}.bin"
        self._blobs.write(name, data, content_type=SEGMENT_CONTENT_TYPE, if_generation_match=0)
        self.sealed.append(name)
        segment = Segment(name, len(data) // SERIAL_BYTES, hashlib.sha256(data).hexdigest(), first, last, not_after)
        self._cache[name] = SortedSerials(data)
        return segment

    def forget(self, names: Sequence[str]) -> None:
        """Drop segments from the cache (sealed by an attempt whose manifest lost)."""
        for name in names:
            self._cache.pop(name, None)

    def delete(self, names: Sequence[str], why: str) -> None:
        """Delete segments no published manifest names; a failure leaves them to the bucket's lifecycle rule."""
        for name in names:
            try:
                self._blobs.delete(name)
            except (BackendError, PreconditionFailed) as exc:
                _log.warning("%s segment %s not deleted (the bucket lifecycle rule will): %s", why, name, exc)

    def compact(self, aid: str, segments: list[Segment], now: dt.datetime) -> list[Segment]:
        """Drop long-expired segments; merge the smallest adjacent pair while there are too many."""
        live = [s for s in segments if s.not_after >= now - self._retain]
        while len(live) > self._max_segments:
            pairs = [
                (live[i].count + live[i + 1].count, i)
                for i in range(len(live) - 1)
                if live[i].count + live[i + 1].count <= self._segment_entries
            ]
            if not pairs:
                break
            _, i = min(pairs)
            a, b = live[i], live[i + 1]
            merged = self.seal(
                aid,
                [*self.load(a), *self.load(b)],
                min(a.first_issued, b.first_issued),
                max(a.last_issued, b.last_issued),
                max(a.not_after, b.not_after),
            )
            live[i : i + 2] = [merged]
        keep = {s.name for s in live}
        for name in [n for n in self._cache if n not in keep]:
            del self._cache[name]
        return live
