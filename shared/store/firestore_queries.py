"""The Firestore store's time-ordered queries, fanned out over the index shards.

Split from `firestore.py` (the writes and point reads) because these are the
queries whose indexes lead with `shard` (see `firestore_shards`): each asks
every shard and merges, so they share one shape and one reason to change.
`FirestoreStore` inherits them; they run on its connection (`firestore_connection`).
Every composite index named here is in `firestore_indexes.json`, and
tests/infra/test_firestore_queries.py proves each query is served by one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from shared.model import Event, Revocation
from shared.retry import Attempt
from shared.store import codec
from shared.store import firestore_docs as docs
from shared.store import firestore_shards as shards_mod
from shared.store.firestore_connection import FirestoreConnection

# Documents deleted per batch by `purge_expired` (Firestore's batch limit is 500).
_PURGE_BATCH = 400
# Documents rewritten per batch by `backfill_shards`.
_BACKFILL_BATCH = 400
# Smallest page `list_events` reads from one collection shard.
_EVENT_PAGE = 50
# The collections whose documents carry `shard` (the claims too: `expireAt` rises).
SHARDED = (docs.CERTIFICATES, docs.REVOCATIONS, docs.EVENTS, docs.CLAIMS)


class ShardedQueries(FirestoreConnection):
    """Queries over the sharded time-ordered indexes (mixed into `FirestoreStore`)."""

    def _in_shard(self, query: Any, shard: int) -> Any:
        return query.where(filter=self._filter(shards_mod.FIELD, "==", shard))

    # ----------------------------------------------------------------- claims

    def purge_expired(self, now: dt.datetime) -> int:
        """Delete claims whose `expireAt` is before `now` (TTL does this too, within a day).

        Index (shard, expireAt) per shard. Claims written before shards existed
        have no `shard`; TTL deletes them (they expire within a token's lifetime).
        """
        cutoff = codec.require_aware(now, "now")
        base = self._col(docs.CLAIMS)
        queries = [
            self._in_shard(base, s).where(filter=self._filter("expireAt", "<", cutoff)).select([]).limit(_PURGE_BATCH)
            for s in range(self.shards)
        ]
        deleted = 0

        def op(a: Attempt) -> int:
            nonlocal deleted
            for query in queries:
                while True:
                    refs = [snap.reference for snap in query.stream(**self._kw(a))]
                    if not refs:
                        break
                    batch = self._client.batch()
                    for ref in refs:
                        batch.delete(ref)
                    batch.commit(**self._kw(a))
                    deleted += len(refs)
            return deleted

        return self._run("purge_expired", op)

    # ----------------------------------------------------------------- certificates

    def list_serials_issued_since(
        self, authority_id: str, since: dt.datetime, *, limit: int = 1000, after_serial: str = ""
    ) -> Sequence[tuple[dt.datetime, str, dt.datetime, str]]:
        """Return `(issued_at, serial, not_after, kind)` after the cursor `(since, after_serial)`.

        Ordered by `(issued_at, document id)`; the document id is the serial, so
        this is `(issued_at, serial)` order. A projection query (no DER is read)
        per shard on the composite index (shard, authority_id, issued_at); each
        shard's first `limit` rows after the cursor are merged.
        """
        if limit <= 0:
            return []
        since_iso = codec.to_iso(since, "since")
        queries = []
        for s in range(self.shards):
            query = (
                self._in_shard(self._col(docs.CERTIFICATES), s)
                .where(filter=self._filter("authority_id", "==", authority_id))
                .where(filter=self._filter("issued_at", ">=", since_iso))
                .order_by("issued_at", direction=self._ascending)
                .order_by(self._document_id, direction=self._ascending)
                .select(["serial", "issued_at", "not_after", "kind"])
            )
            if after_serial:
                query = query.start_after({"issued_at": since_iso, "__name__": docs.doc_id(after_serial)})
            queries.append(query.limit(limit))

        def op(a: Attempt) -> list[tuple[dt.datetime, str, dt.datetime, str]]:
            pages = [[(s.to_dict(), s.id) for s in q.stream(**self._kw(a))] for q in queries]
            merged = shards_mod.merge_pages(pages, key=lambda row: (row[0]["issued_at"], row[1]), limit=limit)
            return [
                (codec.from_iso(f["issued_at"]), str(f["serial"]), codec.from_iso(f["not_after"]), str(f["kind"]))
                for f, _ in merged
            ]

        return self._run("list_serials_issued_since", op)

    def list_certificates_expiring(
        self, authority_id: str, start: dt.datetime, end: dt.datetime, *, limit: int = 1000
    ) -> Sequence[tuple[dt.datetime, str, str]]:
        """Return `(not_after, serial, endpoint_id)` with start <= not_after < end, by not_after.

        A projection query (no DER) per shard on the composite index
        (shard, authority_id, not_after); ties in `not_after` go by serial.
        """
        if limit <= 0:
            return []
        start_iso, end_iso = codec.to_iso(start, "start"), codec.to_iso(end, "end")
        queries = [
            self._in_shard(self._col(docs.CERTIFICATES), s)
            .where(filter=self._filter("authority_id", "==", authority_id))
            .where(filter=self._filter("not_after", ">=", start_iso))
            .where(filter=self._filter("not_after", "<", end_iso))
            .order_by("not_after", direction=self._ascending)
            .order_by(self._document_id, direction=self._ascending)
            .select(["serial", "not_after", "endpoint_id"])
            .limit(limit)
            for s in range(self.shards)
        ]

        def op(a: Attempt) -> list[tuple[dt.datetime, str, str]]:
            pages = [[(s.to_dict(), s.id) for s in q.stream(**self._kw(a))] for q in queries]
            merged = shards_mod.merge_pages(pages, key=lambda row: (row[0]["not_after"], row[1]), limit=limit)
            return [(codec.from_iso(f["not_after"]), str(f["serial"]), str(f["endpoint_id"])) for f, _ in merged]

        return self._run("list_certificates_expiring", op)

    # ----------------------------------------------------------------- revocations

    def revoked_since(self, since: dt.datetime) -> bool:
        """Whether any revocation has `revoked_at` at or after `since` (index (shard, revoked_at))."""
        since_iso = codec.to_iso(since, "since")
        queries = [
            self._in_shard(self._col(docs.REVOCATIONS), s)
            .where(filter=self._filter("revoked_at", ">=", since_iso))
            .limit(1)
            for s in range(self.shards)
        ]

        def op(a: Attempt) -> bool:
            return any(any(True for _ in q.stream(**self._kw(a))) for q in queries)

        return self._run("revoked_since", op)

    def list_revocations(self, authority_id: str, *, not_after_since: dt.datetime) -> Sequence[Revocation]:
        """Return an authority's revocations expiring at or after `not_after_since`.

        Index (shard, authority_id, not_after), every shard read in full.
        """
        since = codec.to_iso(not_after_since, "not_after_since")
        queries = [
            self._in_shard(self._col(docs.REVOCATIONS), s)
            .where(filter=self._filter("authority_id", "==", authority_id))
            .where(filter=self._filter("not_after", ">=", since))
            .order_by("not_after")
            for s in range(self.shards)
        ]

        def op(a: Attempt) -> list[Revocation]:
            found = [docs.revocation_from_fields(s.to_dict()) for q in queries for s in q.stream(**self._kw(a))]
            found.sort(key=lambda r: (codec.to_epoch_us(r.not_after), r.serial))
            return found

        return self._run("list_revocations", op)

    # ----------------------------------------------------------------- events

    def list_events(self, *, since: dt.datetime | None = None, limit: int = 100) -> Sequence[Event]:
        """Return events with time >= `since`, ordered by (time, id).

        Events live in three collections (inside certificates, inside
        revocations, and on their own). Each shard of each is read in
        `ev_first` order (composite index (shard, ev_first ASC, ev_last ASC))
        until no unread document can hold one of the first `limit` events;
        the results are merged.
        """
        if limit <= 0:
            return []
        since_iso = codec.to_iso(since, "since") if since is not None else None

        def op(a: Attempt) -> list[Event]:
            found: list[Event] = []
            for name in docs.EVENT_CARRIERS:
                for s in range(self.shards):
                    found.extend(self._first_events(name, s, since_iso, limit, a))
            return docs.merge_events(found, since=since, limit=limit)

        return self._run("list_events", op)

    def _first_events(self, name: str, shard: int, since_iso: str | None, limit: int, a: Attempt) -> list[Event]:
        """The first `limit` events (in log order) held by one shard of one collection."""
        query = self._in_shard(self._col(name), shard)
        if since_iso is not None:
            query = query.where(filter=self._filter("ev_last", ">=", since_iso))
        query = query.order_by("ev_first").order_by("ev_last")
        page = max(limit, _EVENT_PAGE)
        best: list[Event] = []
        cursor = None
        while True:
            paged = query.limit(page)
            if cursor is not None:
                paged = paged.start_after(cursor)
            snaps = list(paged.stream(**self._kw(a)))
            for snap in snaps:
                fields = snap.to_dict()
                if len(best) >= limit and fields["ev_first"] > codec.to_iso(best[limit - 1].time):
                    return best  # every later document starts after our limit-th event
                best.extend(
                    e for e in docs.events_from_fields(fields) if since_iso is None or codec.to_iso(e.time) >= since_iso
                )
                best.sort(key=docs.sort_key)
            if len(snaps) < page:
                return best
            cursor = snaps[-1]

    # ----------------------------------------------------------------- migration

    def backfill_shards(self) -> int:
        """Give every document of the sharded collections its `shard` for this store's N.

        Documents written before shards existed (or under a larger N) are not
        seen by the sharded queries until this has run; it reads each
        collection in document-id order (only the `shard` field) and rewrites
        the documents whose shard differs. Idempotent; returns how many it
        rewrote. Run it once after the indexes are built (docs/scale.md).
        """

        def op(a: Attempt) -> int:
            changed = 0
            for name in SHARDED:
                query = self._col(name).order_by(self._document_id, direction=self._ascending)
                query = query.select([shards_mod.FIELD])
                cursor = None
                while True:
                    paged = query.limit(_BACKFILL_BATCH)
                    if cursor is not None:
                        paged = paged.start_after(cursor)
                    snaps = list(paged.stream(**self._kw(a)))
                    batch = self._client.batch()
                    pending = 0
                    for snap in snaps:
                        want = self._shard(snap.id)
                        if (snap.to_dict() or {}).get(shards_mod.FIELD) != want:
                            batch.update(snap.reference, {shards_mod.FIELD: want})
                            pending += 1
                    if pending:
                        batch.commit(**self._kw(a))
                        changed += pending
                    if len(snaps) < _BACKFILL_BATCH:
                        break
                    cursor = snaps[-1]
            return changed

        return self._run("backfill_shards", op)
