"""An in-process `Store` for unit tests and the fast development loop.

It behaves like the durable backends in everything the contract suite checks
(create-if-absent, conflicts, ordering, compare-and-set, UTC datetimes,
rejection of naive datetimes and non-JSON data), so code tested against it
behaves the same on SQLite or Firestore. One lock serialises every call, which
makes each method atomic across threads; nothing is shared across processes.

Records go through the same row codec as SQLite on the way in, so a record
read back is normalised exactly as a durable backend would return it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from shared import metering
from shared.clock import Clock, SystemClock
from shared.errors import AlreadyRevoked, Conflict, TokenAlreadyUsed
from shared.model import CertificateRecord, Endpoint, Event, Revocation, TokenClaim
from shared.store import codec
from shared.store.base import EndpointMonth, IssuanceWrite, MonthTotal
from shared.store.memory_inventory import MemoryInventories


class MemoryStore(MemoryInventories):
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

    # ----------------------------------------------------------------- certificates

    def get_certificate(self, serial: str) -> CertificateRecord | None:
        """Return the record for a serial, or None."""
        with self._lock:
            return self._certificates.get(serial)

    def list_certificates_by_endpoint(self, endpoint_id: str) -> Sequence[CertificateRecord]:
        """Return an endpoint's certificates, oldest issue first (serial breaks ties)."""
        with self._lock:
            keys = sorted(self._by_endpoint.get(endpoint_id, ()))
            return [self._certificates[serial] for _, serial in keys]

    def list_serials_issued_since(
        self, authority_id: str, since: dt.datetime, *, limit: int = 1000, after_serial: str = ""
    ) -> Sequence[tuple[dt.datetime, str, dt.datetime, str]]:
        """Return `(issued_at, serial, not_after, kind)` after the cursor `(since, after_serial)`.

        A scan (this store is for tests and small setups); ordered by `(issued_at, serial)`.
        """
        if limit <= 0:
            return []
        cursor = (codec.to_epoch_us(since, "since"), after_serial)
        with self._lock:
            found = [
                (codec.to_epoch_us(c.issued_at), c.serial, c)
                for c in self._certificates.values()
                if c.authority_id == authority_id
            ]
        found = sorted((f for f in found if (f[0], f[1]) > cursor), key=lambda f: (f[0], f[1]))[:limit]
        return [(c.issued_at, c.serial, c.not_after, str(c.kind)) for _, _, c in found]

    def list_certificates_expiring(
        self, authority_id: str, start: dt.datetime, end: dt.datetime, *, limit: int = 1000
    ) -> Sequence[tuple[dt.datetime, str, str]]:
        """Return `(not_after, serial, endpoint_id)` with start <= not_after < end, by not_after then serial."""
        lo, hi = codec.to_epoch_us(start, "start"), codec.to_epoch_us(end, "end")
        with self._lock:
            found = sorted(
                (codec.to_epoch_us(c.not_after), c.serial, c)
                for c in self._certificates.values()
                if c.authority_id == authority_id and lo <= codec.to_epoch_us(c.not_after) < hi
            )[: max(limit, 0)]
        return [(c.not_after, c.serial, c.endpoint_id) for _, _, c in found]

    def record_issuances(self, writes: Sequence[IssuanceWrite]) -> list[Exception | None]:
        """One by one (there is no commit to share here), with `BatchIssuanceLedger`'s outcomes."""
        outcomes: list[Exception | None] = []
        for w in writes:
            try:
                self.record_issuance(w.certificate, new_endpoint=w.new_endpoint, events=w.events, claim=w.claim)
                outcomes.append(None)
            except (TokenAlreadyUsed, Conflict, ValueError) as exc:
                outcomes.append(exc)
        return outcomes

    def record_issuance(
        self,
        certificate: CertificateRecord,
        *,
        new_endpoint: Endpoint | None = None,
        events: Sequence[Event] = (),
        claim: TokenClaim | None = None,
    ) -> None:
        """Store the certificate, maybe an endpoint, events and the token claim; all or nothing."""
        codec.check_issuance(certificate, new_endpoint)
        # Encode everything first: a bad record or event raises before any change.
        cert = codec.certificate_from_row(codec.certificate_to_row(certificate))
        endpoint = (
            codec.endpoint_from_row(codec.endpoint_to_row(new_endpoint))
            if new_endpoint is not None
            else None
        )
        normalised = [codec.event_from_row(codec.event_to_row(e)) for e in events]
        claim_us = codec.to_epoch_us(claim.expires_at, "expires_at") if claim is not None else 0
        with self._lock:
            if cert.serial in self._certificates:
                raise Conflict(f"certificate with serial number '{cert.serial}' already exists")
            if claim is not None:
                if (claim.namespace, claim.key) in self._claims:
                    raise TokenAlreadyUsed()
                self._claims[(claim.namespace, claim.key)] = claim_us
            if endpoint is not None and endpoint.id not in self._endpoints:
                self._endpoints[endpoint.id] = endpoint
            self._certificates[cert.serial] = cert
            self._by_endpoint.setdefault(cert.endpoint_id, []).append(
                (codec.to_epoch_us(cert.issued_at), cert.serial)
            )
            self._meter_issuance(cert)
            self._add_events(normalised)

    # ----------------------------------------------------------------- endpoints

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return one endpoint or None."""
        with self._lock:
            return self._endpoints.get(endpoint_id)

    def list_endpoints(
        self, *, authority_id: str | None = None, limit: int = 100, after: str = ""
    ) -> Sequence[Endpoint]:
        """Return endpoints ordered by id, starting after the id `after`."""
        if limit <= 0:
            return []
        with self._lock:
            ids = sorted(
                i
                for i, e in self._endpoints.items()
                if i > after and (authority_id is None or e.authority_id == authority_id)
            )
            return [self._endpoints[i] for i in ids[:limit]]

    # ----------------------------------------------------------------- revocations

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

    # ----------------------------------------------------------------- usage

    def _interval(self, cert: CertificateRecord) -> metering.Interval:
        rev = self._revocations.get(cert.serial)
        return metering.active_interval(
            not_before_us=codec.to_epoch_us(cert.not_before),
            not_after_us=codec.to_epoch_us(cert.not_after),
            issued_at_us=codec.to_epoch_us(cert.issued_at),
            revoked_at_us=codec.to_epoch_us(rev.revoked_at) if rev is not None else None,
        )

    def _endpoint_intervals(self, endpoint_id: str, skip: str = "") -> list[metering.Interval]:
        return [
            self._interval(self._certificates[serial])
            for _, serial in self._by_endpoint.get(endpoint_id, [])
            if serial != skip
        ]

    def _store_usage(self, cert: CertificateRecord, usage: dict[str, metering.MonthUsage | None]) -> None:
        endpoint = self._endpoints.get(cert.endpoint_id)
        owner = (endpoint.authority_id, endpoint.name) if endpoint is not None else (cert.authority_id, "")
        for month, u in usage.items():
            key = (month, cert.endpoint_id)
            if u is None:
                self._usage.pop(key, None)
                continue
            old = self._usage.get(key)
            self._usage[key] = (u, *(old[1:] if old is not None else owner))

    def _meter_issuance(self, cert: CertificateRecord) -> None:
        """Fold a certificate just recorded into its endpoint's month records (under the lock)."""
        new = self._interval(cert)
        current = {
            m: found[0]
            for m in metering.months_overlapping(new)
            if (found := self._usage.get((m, cert.endpoint_id))) is not None
        }
        updated = metering.after_issuance(new, self._endpoint_intervals(cert.endpoint_id, cert.serial), current)
        self._store_usage(cert, dict(updated))

    def _meter_revocation(self, rev: Revocation) -> None:
        """Recompute the month records a revocation just recorded cut short (under the lock)."""
        cert = self._certificates.get(rev.serial)
        if cert is None:
            return
        after = self._interval(cert)
        before = (after[0], max(after[0], codec.to_epoch_us(cert.not_after)))
        months = metering.revocation_months(before, after)
        self._store_usage(cert, metering.after_revocation(months, self._endpoint_intervals(cert.endpoint_id)))

    def list_endpoint_months(self, month: str, *, authority_id: str | None = None) -> Sequence[EndpointMonth]:
        """Return a month's endpoint-month records, by endpoint id."""
        metering.parse_month(month)
        f = codec.from_epoch_us
        with self._lock:
            found = [
                EndpointMonth(m, e, auth, name, f(u.billable_from_us), f(u.billable_to_us), u.peak_active)
                for (m, e), (u, auth, name) in self._usage.items()
                if m == month and (authority_id is None or auth == authority_id)
            ]
        return sorted(found, key=lambda r: r.endpoint_id)

    def page_endpoint_months(self, month: str, *, after: str = "", limit: int = 50) -> Sequence[EndpointMonth]:
        """A page of a month's endpoint-month records, by endpoint id."""
        return [r for r in self.list_endpoint_months(month) if r.endpoint_id > after][:limit]

    def usage_total(self, month: str, *, authority_id: str | None = None) -> MonthTotal:
        """A month's totals from its records."""
        metering.parse_month(month)
        with self._lock:
            peaks = [u.peak_active for (m, _e), (u, auth, _n) in self._usage.items()
                     if m == month and u.peak_active > 0 and (authority_id is None or auth == authority_id)]
        return MonthTotal(month, len(peaks), sum(metering.units(p) for p in peaks))

    # ----------------------------------------------------------------- events

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

    # ----------------------------------------------------------------- counters

    def next_value(self, name: str) -> int:
        """Increment and return the named counter (first value 1)."""
        with self._lock:
            value = self._counters.get(name, 0) + 1
            self._counters[name] = value
            return value

    # ----------------------------------------------------------------- documents

    def create_document(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create a document at version 1 if absent."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        with self._lock:
            if (collection, doc_id) in self._documents:
                return False
            self._documents[(collection, doc_id)] = (text, 1, expires_us)
            return True

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return a fresh copy of `(data, version)` or None."""
        with self._lock:
            found = self._documents.get((collection, doc_id))
        if found is None:
            return None
        return codec.load_json_object(found[0]), found[1]

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_document` for each key, in order."""
        return [self.get_document(collection, doc_id) for collection, doc_id in keys]

    def update_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int
    ) -> bool:
        """Replace the document if its version is still `expected_version`."""
        text = codec.dump_json(data, "document data")
        with self._lock:
            found = self._documents.get((collection, doc_id))
            if found is None or found[1] != expected_version:
                return False
            self._documents[(collection, doc_id)] = (text, found[1] + 1, found[2])
            return True

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Return documents whose top-level string `field` equals `value`, by id."""
        if limit <= 0:
            return []
        with self._lock:
            candidates = sorted(
                (doc_id, text, version)
                for (coll, doc_id), (text, version, _) in self._documents.items()
                if coll == collection
            )
        out: list[tuple[str, dict[str, Any], int]] = []
        for doc_id, text, version in candidates:
            data = codec.load_json_object(text)
            if codec.field_matches(data, field, value):
                out.append((doc_id, data, version))
                if len(out) >= limit:
                    break
        return out

    def purge_expired_documents(self, now: dt.datetime | None = None) -> int:
        """Delete documents whose `expires_at` is before `now` (default: the clock)."""
        now_us = codec.to_epoch_us(now if now is not None else self._clock.now(), "now")
        with self._lock:
            stale = [
                k for k, (_, _, exp) in self._documents.items() if exp is not None and exp < now_us
            ]
            for k in stale:
                del self._documents[k]
            return len(stale)

    def create_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        claim: TokenClaim,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create a document at version 1 and claim the token, both or neither."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        claim_us = codec.to_epoch_us(claim.expires_at, "expires_at")
        with self._lock:
            if (claim.namespace, claim.key) in self._claims:
                raise TokenAlreadyUsed()
            if (collection, doc_id) in self._documents:
                return False
            self._claims[(claim.namespace, claim.key)] = claim_us
            self._documents[(collection, doc_id)] = (text, 1, expires_us)
            return True

    def update_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expected_version: int,
        claim: TokenClaim,
    ) -> bool:
        """Compare-and-set the document and claim the token, both or neither."""
        text = codec.dump_json(data, "document data")
        claim_us = codec.to_epoch_us(claim.expires_at, "expires_at")
        with self._lock:
            if (claim.namespace, claim.key) in self._claims:
                raise TokenAlreadyUsed()
            found = self._documents.get((collection, doc_id))
            if found is None or found[1] != expected_version:
                return False
            self._claims[(claim.namespace, claim.key)] = claim_us
            self._documents[(collection, doc_id)] = (text, found[1] + 1, found[2])
            return True

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Nothing to release; kept for the `Store` protocol."""
        self._closed = True


def from_url(url: str, *, clock: Clock) -> MemoryStore:
    """Open a `memory:` URL (each call is a new, empty store)."""
    return MemoryStore(clock=clock)
