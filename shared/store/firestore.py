"""The serverless `Store`: Cloud Firestore (native mode).

Every method is one durable operation built from Firestore's own atomic
primitives, without read-then-write races:

- Single-use claims (token `jti`s, ACME nonces) and create-if-absent records
  use `create()`, which the server rejects if the document exists: two
  instances can never both win.
- An issuance is one transaction: it reads the token claim, the certificate
  and endpoint documents (to tell a replay, a serial clash or an existing
  endpoint), the endpoint's certificates still active after the new one starts
  with their revocations, and the endpoint-month usage documents the new
  certificate spans (`firestore_usage`); then it creates the claim, the
  certificate (carrying the issuance's events) and, when new, the endpoint, and
  sets those usage documents. Usage needs the reads, and keeping it in the same
  transaction is what makes it exact with several instances writing at once.
  The usage documents are the lock: the endpoint's certificates are queried
  after them and outside the transaction's lock set (`firestore_usage` says
  why that stays exact), so issuances into different endpoints never wait on
  each other.
  Document writes per issued certificate: the claim (1) + the certificate (1)
  + the endpoint only when new (1) + one usage document per month the
  certificate spans (1, or 2 across a month end).
- A revocation is one transaction the same way: the revocation document and
  the usage documents of the months it cut short.
- Compare-and-set documents carry a version; an update is sent with the
  server's `update_time` as precondition, so a concurrent writer makes it fail
  instead of being overwritten.
- Counters use the server-side `Increment` transform, whose result comes back
  with the write: atomic, no transaction, no contention retries on a hot
  document.

Faults: SDK errors become `BackendError` (transient for unavailable, deadline,
aborted, internal and resource-exhausted), every operation runs under
`shared.retry.RetryPolicy` with a deadline, and the SDK's own retries are
switched off so that deadline is the only one. A write whose answer was lost
may have been applied; each write therefore carries a random write id `w`,
and a retry that meets "already exists" checks whether the document is its
own earlier attempt. A lost counter answer can skip a number (never repeat
one), which CRL numbering allows.

The SDK (`google.cloud.firestore`, ~260 ms to import) is imported, and the
client made, on the store's first operation, not in the constructor: a function
that opens the store but never reads it (the OCSP responder answers from the
bucket) never pays for it. The SDK's handles are `functools.cached_property`s
over that one connection, so after it they are plain instance attributes.
Collection names take a configurable prefix so several
stores (tests, deployments) can share one database. The layout is described
in `firestore_docs.py`; the composite indexes and TTL policies it needs are in
`firestore_indexes.json`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shared import metering
from shared.clock import Clock, SystemClock
from shared.errors import AlreadyRevoked, BackendError, ConfigError, Conflict, TokenAlreadyUsed
from shared.model import CertificateRecord, Endpoint, Event, Revocation, TokenClaim
from shared.retry import Attempt, RetryPolicy
from shared.store import codec, firestore_shards, firestore_usage
from shared.store import firestore_docs as docs
from shared.store.base import EndpointMonth, MonthTotal
from shared.store.firestore_inventory import FirestoreInventories
from shared.store.firestore_queries import ShardedQueries

T = TypeVar("T")

# Commits of one transaction the SDK tries before contention counts as a transient failure.
_TRANSACTION_ATTEMPTS = 5
_ESCAPE = re.compile("~(7E|2F)")


class FirestoreStore(ShardedQueries, FirestoreInventories):
    """Every storage role on Cloud Firestore (or its emulator)."""

    # Endpoint ids Cirrus mints for this store (`shared.endpoints`): random, since
    # Firestore hot-spots on document ids (and indexes) that rise with time.
    endpoint_id_order = "random"

    def __init__(
        self,
        *,
        project: str | None = None,
        database: str = "(default)",
        prefix: str = "",
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        client: Any = None,
        shards: int = firestore_shards.DEFAULT_SHARDS,
    ) -> None:
        """Connect lazily (the SDK opens its channel on the first call).

        Args:
            project: Google Cloud project; None lets the SDK find it.
            database: Firestore database id.
            prefix: Prepended to every top-level collection name.
            clock: Time source (kept for the protocol's sake; Firestore's
                TTL, not this clock, deletes expired documents).
            retry: Backoff and deadline around each operation.
            client: A ready `google.cloud.firestore.Client` (tests inject one
                that fails on purpose); by default one is made from
                `project` and `database`.
            shards: N, the shards of every time-ordered index
                (`firestore_shards`); may be raised later, not lowered
                without `backfill_shards`.
        """
        self.shards = firestore_shards.check_shards(shards)
        self._project = project
        self._database = database
        self._given_client = client
        self._owns_client = client is None
        self._clock: Clock = clock or SystemClock()
        self._retry = retry or RetryPolicy()
        self.prefix = prefix
        self._connect_lock = threading.Lock()

    # ----------------------------------------------------------------- the SDK, on first use

    @functools.cached_property
    def _sdk(self) -> _SDK:
        """Import the SDK and make the client (once; the lock keeps two first requests to one client)."""
        with self._connect_lock:
            if "_sdk" in self.__dict__:  # another thread connected while this one waited
                connected: _SDK = self.__dict__["_sdk"]
                return connected
            sdk = _connect(self._given_client, self._project, self._database, self._retry.deadline)
            self.__dict__["_sdk"] = sdk  # before the lock is released (3.12's cached_property has none)
            return sdk

    @functools.cached_property
    def _client(self) -> Any:
        return self._sdk.client

    @functools.cached_property
    def _api(self) -> Any:
        return self._sdk.api_exceptions

    @functools.cached_property
    def _auth(self) -> Any:
        return self._sdk.auth_exceptions

    @functools.cached_property
    def _filter(self) -> Any:
        return self._sdk.firestore_v1.FieldFilter

    @functools.cached_property
    def _increment(self) -> Any:
        return self._sdk.firestore_v1.Increment

    @functools.cached_property
    def _transactional(self) -> Any:
        return self._sdk.firestore_v1.transactional

    @functools.cached_property
    def _field_path(self) -> Any:
        return self._sdk.field_path

    @functools.cached_property
    def _document_id(self) -> Any:
        return self._sdk.field_path.document_id()

    @functools.cached_property
    def _ascending(self) -> Any:
        return self._sdk.firestore_v1.Query.ASCENDING

    @functools.cached_property
    def _transient(self) -> tuple[type[BaseException], ...]:
        api, auth = self._sdk.api_exceptions, self._sdk.auth_exceptions
        return (
            api.ServiceUnavailable,
            api.DeadlineExceeded,
            api.Aborted,
            api.InternalServerError,
            api.ResourceExhausted,
            api.RetryError,
            auth.TransportError,
        )

    @functools.cached_property
    def _meter(self) -> firestore_usage.FirestoreMeter:
        return firestore_usage.FirestoreMeter(col=self._col, client=self._client, field_filter=self._filter)

    # ----------------------------------------------------------------- plumbing

    def _col(self, name: str) -> Any:
        return self._client.collection(self.prefix + name)

    def _items(self, collection: str) -> Any:
        parent = self._col(docs.COLLECTIONS).document(docs.doc_id(collection))
        return parent.collection(self.prefix + docs.DOCUMENTS)

    def _run(self, what: str, operation: Callable[[Attempt], T]) -> T:
        """Run one store operation under the retry policy, translating SDK errors."""

        def attempt(a: Attempt) -> T:
            try:
                return operation(a)
            except (self._api.GoogleAPICallError, self._api.RetryError) as exc:
                transient = isinstance(exc, self._transient)
                raise BackendError(f"firestore {what}: {type(exc).__name__}: {exc}", transient=transient) from exc
            except self._auth.GoogleAuthError as exc:
                transient = isinstance(exc, self._transient)
                raise BackendError(f"firestore {what}: {type(exc).__name__}", transient=transient) from exc

        return self._retry.call(attempt, what=f"firestore {what}")

    @staticmethod
    def _kw(a: Attempt) -> dict[str, Any]:
        """SDK call options: no SDK-side retry (ours has the deadline), bounded time."""
        return {"retry": None, "timeout": a.timeout()}

    def _is_own_write(self, ref: Any, write_id: str, a: Attempt) -> bool:
        """After "already exists": is the document our own earlier, unanswered attempt?"""
        if a.number == 1:
            return False  # nothing of ours can have landed before the first attempt
        snap = ref.get(**self._kw(a))
        return bool(snap.exists and snap.get("w") == write_id)

    # ----------------------------------------------------------------- TokenLedger

    def claim(self, namespace: str, key: str, expires_at: dt.datetime) -> bool:
        """Create the claim document; True only for the call that created it."""
        expire = codec.require_aware(expires_at, "expires_at")
        ref = self._col(docs.CLAIMS).document(docs.claim_id(namespace, key))
        write_id = secrets.token_hex(8)
        fields = {"ns": namespace, "key": key, "expireAt": expire, "w": write_id, "shard": self._shard(ref.id)}

        def op(a: Attempt) -> bool:
            try:
                ref.create(fields, **self._kw(a))
                return True
            except self._api.AlreadyExists:
                return self._is_own_write(ref, write_id, a)

        return self._run("claim", op)

    # ----------------------------------------------------------------- certificates

    def get_certificate(self, serial: str) -> CertificateRecord | None:
        """Return the record for a serial, or None."""
        ref = self._col(docs.CERTIFICATES).document(docs.doc_id(serial))

        def op(a: Attempt) -> CertificateRecord | None:
            snap = ref.get(**self._kw(a))
            return docs.certificate_from_fields(snap.to_dict()) if snap.exists else None

        return self._run("get_certificate", op)

    def list_certificates_by_endpoint(self, endpoint_id: str) -> Sequence[CertificateRecord]:
        """Return an endpoint's certificates, oldest issue first (serial breaks ties).

        One equality query on a single-field index; the (small) result is
        ordered here, which saves a composite index that every certificate
        write would have to maintain.
        """
        query = self._col(docs.CERTIFICATES).where(filter=self._filter("endpoint_id", "==", endpoint_id))

        def op(a: Attempt) -> list[CertificateRecord]:
            found = [docs.certificate_from_fields(s.to_dict()) for s in query.stream(**self._kw(a))]
            found.sort(key=lambda c: (codec.to_epoch_us(c.issued_at), c.serial))
            return found

        return self._run("list_certificates_by_endpoint", op)

    def record_issuance(
        self,
        certificate: CertificateRecord,
        *,
        new_endpoint: Endpoint | None = None,
        events: Sequence[Event] = (),
        claim: TokenClaim | None = None,
    ) -> None:
        """Write the claim, the certificate (with its events), a new endpoint and the usage in one transaction."""
        codec.check_issuance(certificate, new_endpoint)
        write_id = secrets.token_hex(8)
        cert_fields = {
            **docs.certificate_fields(certificate),
            **docs.events_fields(docs.encode_events(events)),
            "w": write_id,
            "shard": self._shard(docs.doc_id(certificate.serial)),
        }
        cert_ref = self._col(docs.CERTIFICATES).document(docs.doc_id(certificate.serial))
        endpoint_ref: Any = None
        endpoint_fields: dict[str, Any] = {}
        if new_endpoint is not None:
            endpoint_fields = docs.endpoint_fields(new_endpoint)
            endpoint_ref = self._col(docs.ENDPOINTS).document(docs.doc_id(new_endpoint.id))
        claim_ref: Any = None
        claim_fields: dict[str, Any] = {}
        if claim is not None:
            claim_ref = self._col(docs.CLAIMS).document(docs.claim_id(claim.namespace, claim.key))
            expire = codec.require_aware(claim.expires_at, "expires_at")
            claim_fields = {"ns": claim.namespace, "key": claim.key, "expireAt": expire, "w": write_id}
            claim_fields["shard"] = self._shard(claim_ref.id)

        endpoint_id = certificate.endpoint_id
        new_interval = metering.active_interval(
            not_before_us=codec.to_epoch_us(certificate.not_before),
            not_after_us=codec.to_epoch_us(certificate.not_after),
            issued_at_us=codec.to_epoch_us(certificate.issued_at),
            revoked_at_us=None,
        )
        months = metering.months_overlapping(new_interval)
        owner_ref = self._col(docs.ENDPOINTS).document(docs.doc_id(endpoint_id))

        def body(tx: Any, a: Attempt) -> None:
            kw = self._kw(a)
            refs = [r for r in (claim_ref, cert_ref, owner_ref) if r is not None]
            snaps = {s.reference.path: s for s in self._client.get_all(refs, transaction=tx, **kw)}
            if claim_ref is not None and snaps[claim_ref.path].exists:
                if (snaps[claim_ref.path].to_dict() or {}).get("w") == write_id:
                    return  # our earlier attempt landed (the transaction is atomic)
                raise TokenAlreadyUsed()
            if snaps[cert_ref.path].exists:
                if (snaps[cert_ref.path].to_dict() or {}).get("w") == write_id:
                    return
                raise Conflict(f"certificate with serial number '{certificate.serial}' already exists")
            owner_snap = snaps[owner_ref.path]
            if owner_snap.exists:
                owner_fields = owner_snap.to_dict() or {}
                owner = (str(owner_fields["authority_id"]), str(owner_fields["name"]))
            elif new_endpoint is not None:
                owner = (new_endpoint.authority_id, new_endpoint.name)
            else:
                owner = (certificate.authority_id, "")
            current = self._meter.read_months(tx, kw, endpoint_id, months)  # first: see `firestore_usage`
            others = self._meter.intervals(tx, kw, endpoint_id, new_interval, skip=certificate.serial) if months else []
            usage = metering.after_issuance(
                new_interval, others, {m: firestore_usage.usage_of(f) for m, f in current.items()}
            )
            if claim_ref is not None:
                tx.create(claim_ref, claim_fields)
            tx.create(cert_ref, cert_fields)
            if endpoint_ref is not None and not owner_snap.exists:
                tx.create(endpoint_ref, endpoint_fields)
            self._meter.write_months(tx, endpoint_id, owner, current, dict(usage))

        def op(a: Attempt) -> None:
            try:
                self._transaction(lambda tx: body(tx, a))
            except BackendError as exc:
                # Several instances redeeming one token contend on its claim document; a loser
                # whose transaction kept aborting must still learn the definite answer (401),
                # not a 503: read the claim outside the transaction.
                if claim_ref is None or not exc.transient:
                    raise
                snap = claim_ref.get(**self._kw(a))
                if not snap.exists:
                    raise
                if (snap.to_dict() or {}).get("w") == write_id:
                    return  # our own commit landed; its answer was lost
                raise TokenAlreadyUsed() from None

        self._run("record_issuance", op)

    def _transaction(self, body: Callable[[Any], None]) -> None:
        """Run `body(transaction)` in one Firestore transaction (reads first, then writes, all or nothing).

        The SDK re-runs the body when the commit is aborted by contention (keeping the
        transaction's place in line). Any failure of the commit itself is ambiguous (it may
        have been applied with its answer lost, and the SDK's own resend of that commit then
        meets "transaction is invalid or closed"), so it is transient here: the store's retry
        runs the whole operation again in a fresh transaction, whose reads find the
        operation's own write id if the first commit landed.
        """
        committing = False

        def run(tx: Any) -> None:
            nonlocal committing
            body(tx)
            committing = True

        try:
            self._transactional(run)(self._client.transaction(max_attempts=_TRANSACTION_ATTEMPTS))
        except ValueError as exc:
            if isinstance(exc.__cause__, self._api.Aborted):
                raise BackendError("firestore transaction: aborted by contention", transient=True) from exc
            # A failure before the transaction began (BeginTransaction unanswered) makes the
            # SDK's clean-up rollback raise ValueError ("no transaction ID"): the API error it
            # was cleaning up after is the one that counts.
            earlier = exc.__context__
            if isinstance(earlier, self._api.GoogleAPICallError | self._api.RetryError):
                if committing:
                    raise BackendError(f"firestore commit: {type(earlier).__name__}", transient=True) from earlier
                raise earlier from None
            raise
        except self._api.GoogleAPICallError as exc:
            if committing or isinstance(exc, self._api.Aborted):
                # Aborted before the commit too: a read lost its lock to another transaction.
                raise BackendError(f"firestore transaction: {type(exc).__name__}", transient=True) from exc
            raise

    def list_endpoint_months(self, month: str, *, authority_id: str | None = None) -> Sequence[EndpointMonth]:
        """Return a month's endpoint-month records, by endpoint id (one equality query)."""
        metering.parse_month(month)
        query = self._col(firestore_usage.ENDPOINT_MONTHS).where(filter=self._filter("month", "==", month))
        if authority_id is not None:
            query = query.where(filter=self._filter("authority_id", "==", authority_id))

        def op(a: Attempt) -> list[EndpointMonth]:
            found = [firestore_usage.endpoint_month_from_fields(s.to_dict()) for s in query.stream(**self._kw(a))]
            found.sort(key=lambda r: r.endpoint_id)
            return found

        return self._run("list_endpoint_months", op)

    def page_endpoint_months(self, month: str, *, after: str = "", limit: int = 50) -> Sequence[EndpointMonth]:
        """A page of a month's records by endpoint id: equality on month, range and order on
        `endpoint_id` (composite index (month, endpoint_id))."""
        metering.parse_month(month)
        query = self._col(firestore_usage.ENDPOINT_MONTHS).where(filter=self._filter("month", "==", month))
        if after:
            query = query.where(filter=self._filter("endpoint_id", ">", after))
        query = query.order_by("endpoint_id", direction=self._ascending).limit(limit)

        def op(a: Attempt) -> list[EndpointMonth]:
            return [firestore_usage.endpoint_month_from_fields(s.to_dict()) for s in query.stream(**self._kw(a))]

        return self._run("page_endpoint_months", op)

    def usage_total(self, month: str, *, authority_id: str | None = None) -> MonthTotal:
        """A month's totals by two aggregation queries (count; count and sum above the included three).

        `endpoint_months = count + sum(peak) - 3 * count(peak > 3)` over the records with
        `peak_active > 3`; no record is read. Index: (month, peak_active) in firestore_indexes.json.
        """
        metering.parse_month(month)
        extra = metering.EXTRA_ABOVE
        query = self._col(firestore_usage.ENDPOINT_MONTHS).where(filter=self._filter("month", "==", month))
        if authority_id is not None:
            query = query.where(filter=self._filter("authority_id", "==", authority_id))
        every = query.where(filter=self._filter("peak_active", ">", 0)).count(alias="n")
        above = query.where(filter=self._filter("peak_active", ">", extra))
        above_agg = above.count(alias="n").sum("peak_active", alias="s")

        def values(agg: Any, a: Attempt) -> dict[str, int]:
            found = agg.get(**self._kw(a))
            return {r.alias: int(r.value or 0) for row in found for r in row}

        def op(a: Attempt) -> MonthTotal:
            n = values(every, a).get("n", 0)
            big = values(above_agg, a)
            return MonthTotal(month, n, n + big.get("s", 0) - extra * big.get("n", 0))

        return self._run("usage_total", op)

    # ----------------------------------------------------------------- endpoints

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return one endpoint or None."""
        ref = self._col(docs.ENDPOINTS).document(docs.doc_id(endpoint_id))

        def op(a: Attempt) -> Endpoint | None:
            snap = ref.get(**self._kw(a))
            return docs.endpoint_from_fields(snap.to_dict()) if snap.exists else None

        return self._run("get_endpoint", op)

    def list_endpoints(
        self, *, authority_id: str | None = None, limit: int = 100, after: str = ""
    ) -> Sequence[Endpoint]:
        """Return endpoints ordered by id, starting after the id `after`.

        Ordered by document id, which equals the endpoint id for every id
        Cirrus makes (see `firestore_docs.doc_id`); an equality filter plus
        document-id order is served by the single-field index.
        """
        if limit <= 0:
            return []
        col = self._col(docs.ENDPOINTS)
        query = col
        if authority_id is not None:
            query = query.where(filter=self._filter("authority_id", "==", authority_id))
        if after:
            after_ref = col.document(docs.doc_id(after))
            query = query.where(filter=self._filter(self._document_id, ">", after_ref))
        query = query.order_by(self._document_id, direction=self._ascending).limit(limit)

        def op(a: Attempt) -> list[Endpoint]:
            return [docs.endpoint_from_fields(s.to_dict()) for s in query.stream(**self._kw(a))]

        return self._run("list_endpoints", op)

    # ----------------------------------------------------------------- revocations

    def get_revocation(self, serial: str) -> Revocation | None:
        """Return the revocation of a serial, or None."""
        ref = self._col(docs.REVOCATIONS).document(docs.doc_id(serial))

        def op(a: Attempt) -> Revocation | None:
            snap = ref.get(**self._kw(a))
            return docs.revocation_from_fields(snap.to_dict()) if snap.exists else None

        return self._run("get_revocation", op)

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Create the revocation document, carrying its events; AlreadyRevoked if it exists."""
        write_id = secrets.token_hex(8)
        fields = {
            **docs.revocation_fields(revocation),
            **docs.events_fields(docs.encode_events(events)),
            "w": write_id,
            "shard": self._shard(docs.doc_id(revocation.serial)),
        }
        ref = self._col(docs.REVOCATIONS).document(docs.doc_id(revocation.serial))
        cert_ref = self._col(docs.CERTIFICATES).document(docs.doc_id(revocation.serial))
        revoked_iso = fields["revoked_at"]

        def body(tx: Any, a: Attempt) -> None:
            kw = self._kw(a)
            snaps = {s.reference.path: s for s in self._client.get_all([ref, cert_ref], transaction=tx, **kw)}
            if snaps[ref.path].exists:
                if (snaps[ref.path].to_dict() or {}).get("w") == write_id:
                    return
                raise AlreadyRevoked(revocation.serial)
            cert = snaps[cert_ref.path].to_dict() if snaps[cert_ref.path].exists else None
            months: list[str] = []
            if cert is not None:
                before = firestore_usage.interval_of(cert, None)
                after = firestore_usage.interval_of(cert, revoked_iso)
                months = metering.revocation_months(before, after)
            if cert is None or not months:
                tx.create(ref, fields)
                return
            endpoint_id = str(cert["endpoint_id"])
            window = (metering.month_bounds(months[0])[0], metering.month_bounds(months[-1])[1])
            current = self._meter.read_months(tx, kw, endpoint_id, months)  # first: see `firestore_usage`
            intervals = self._meter.intervals(tx, kw, endpoint_id, window, revoked={revocation.serial: revoked_iso})
            owner = (str(cert["authority_id"]), "")
            if any(m not in current for m in months):
                owner_snap = self._col(docs.ENDPOINTS).document(docs.doc_id(endpoint_id)).get(transaction=tx, **kw)
                if owner_snap.exists:
                    owner = (str(owner_snap.get("authority_id")), str(owner_snap.get("name")))
            tx.create(ref, fields)
            self._meter.write_months(tx, endpoint_id, owner, current, metering.after_revocation(months, intervals))

        def op(a: Attempt) -> None:
            self._transaction(lambda tx: body(tx, a))

        self._run("revoke", op)

    # ----------------------------------------------------------------- events

    def append_events(self, events: Sequence[Event]) -> None:
        """Create one document per event; ids already logged are left as they are."""
        pending = {
            docs.doc_id(e.id): {**docs.events_fields([encoded]), "shard": self._shard(docs.doc_id(e.id))}
            for e, encoded in zip(events, docs.encode_events(events), strict=True)
        }
        if not pending:
            return
        col = self._col(docs.EVENTS)

        def op(a: Attempt) -> None:
            while pending:
                batch = self._client.batch()
                for event_doc, fields in pending.items():
                    batch.create(col.document(event_doc), fields)
                try:
                    batch.commit(**self._kw(a))
                    return
                except self._api.AlreadyExists:
                    refs = [col.document(d) for d in pending]
                    for snap in self._client.get_all(refs, field_paths=[], **self._kw(a)):
                        if snap.exists:
                            pending.pop(snap.id, None)

        self._run("append_events", op)

    # ----------------------------------------------------------------- counters

    def next_value(self, name: str) -> int:
        """Increment the named counter on the server and return the new value."""
        ref = self._col(docs.COUNTERS).document(docs.doc_id(name))

        def op(a: Attempt) -> int:
            result = ref.set({"value": self._increment(1)}, merge=True, **self._kw(a))
            return int(result.transform_results[0].integer_value)

        return self._run("next_value", op)

    # ----------------------------------------------------------------- documents

    def create_document(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create the document at version 1 if absent (with `expireAt` for TTL)."""
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, 1, expires_at=expires_at), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))

        def op(a: Attempt) -> bool:
            try:
                ref.create(fields, **self._kw(a))
                return True
            except self._api.AlreadyExists:
                return self._is_own_write(ref, write_id, a)

        return self._run("create_document", op)

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        ref = self._items(collection).document(docs.doc_id(doc_id))

        def op(a: Attempt) -> tuple[dict[str, Any], int] | None:
            snap = ref.get(**self._kw(a))
            return docs.document_from_fields(snap.to_dict()) if snap.exists else None

        return self._run("get_document", op)

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_document` for each key, in order, in one batched read (one RPC)."""
        if not keys:
            return []
        refs = [self._items(collection).document(docs.doc_id(doc_id)) for collection, doc_id in keys]

        def op(a: Attempt) -> list[tuple[dict[str, Any], int] | None]:
            by_path = {snap.reference.path: snap for snap in self._client.get_all(refs, **self._kw(a))}
            out: list[tuple[dict[str, Any], int] | None] = []
            for ref in refs:
                snap: Any = by_path.get(ref.path)
                out.append(docs.document_from_fields(snap.to_dict()) if snap is not None and snap.exists else None)
            return out

        return self._run("get_documents", op)

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int) -> bool:
        """Replace the document if it is still at `expected_version`.

        Reads the version and the server's `update_time`, then writes with
        that `update_time` as precondition: any write in between fails ours.
        """
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, expected_version + 1), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))

        def op(a: Attempt) -> bool:
            snap = ref.get(**self._kw(a))
            if not snap.exists:
                return False
            version = int(snap.get("v"))
            if version != expected_version:
                # A previous attempt of ours may have landed without an answer.
                return a.number > 1 and version == expected_version + 1 and (snap.get("w") == write_id)
            option = self._client.write_option(last_update_time=snap.update_time)
            try:
                ref.update(fields, option=option, **self._kw(a))
            except (self._api.FailedPrecondition, self._api.NotFound):
                return False
            return True

        return self._run("update_document", op)

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Return documents whose top-level string `field` equals `value`, by id.

        One equality query on `idx.f<field>` (single-field index); each hit is
        re-checked on the decoded data, so a digest-indexed long value can
        never return a wrong match.
        """
        if limit <= 0:
            return []
        path = self._field_path("idx", docs.index_key(field)).to_api_repr()
        query = (
            self._items(collection)
            .where(filter=self._filter(path, "==", codec.index_value(value)))
            .order_by(self._document_id, direction=self._ascending)
            .limit(limit)
        )

        def op(a: Attempt) -> list[tuple[str, dict[str, Any], int]]:
            out: list[tuple[str, dict[str, Any], int]] = []
            for snap in query.stream(**self._kw(a)):
                data, version = docs.document_from_fields(snap.to_dict())
                if codec.field_matches(data, field, value):
                    out.append((_raw_id(snap.id), data, version))
            return out

        return self._run("find_documents", op)

    def _claim_doc(self, claim: TokenClaim, write_id: str) -> tuple[Any, dict[str, Any]]:
        """The claim document's reference and fields, as `claim` writes them."""
        expire = codec.require_aware(claim.expires_at, "expires_at")
        ref = self._col(docs.CLAIMS).document(docs.claim_id(claim.namespace, claim.key))
        shard = self._shard(ref.id)
        return ref, {"ns": claim.namespace, "key": claim.key, "expireAt": expire, "w": write_id, "shard": shard}

    def _claim_landed_or_raise(self, claim_ref: Any, write_id: str, a: Attempt) -> bool:
        """After a failed batch: True if our earlier attempt landed, TokenAlreadyUsed if another claimed it."""
        snap = claim_ref.get(**self._kw(a))
        if not snap.exists:
            return False
        if (snap.to_dict() or {}).get("w") == write_id:
            return True  # the batch is atomic: our claim there means our document write landed too
        raise TokenAlreadyUsed()

    def create_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        claim: TokenClaim,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create the claim and the document in one batch (both or neither)."""
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, 1, expires_at=expires_at), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))
        claim_ref, claim_fields = self._claim_doc(claim, write_id)

        def op(a: Attempt) -> bool:
            batch = self._client.batch()
            batch.create(claim_ref, claim_fields)
            batch.create(ref, fields)
            try:
                batch.commit(**self._kw(a))
                return True
            except self._api.AlreadyExists:
                # Claim absent: the document existed, and nothing of ours landed.
                return self._claim_landed_or_raise(claim_ref, write_id, a)

        return self._run("create_document_claiming", op)

    def update_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expected_version: int,
        claim: TokenClaim,
    ) -> bool:
        """Create the claim and replace the document (at `expected_version`) in one batch."""
        write_id = secrets.token_hex(8)
        fields = {**docs.document_fields(data, expected_version + 1), "w": write_id}
        ref = self._items(collection).document(docs.doc_id(doc_id))
        claim_ref, claim_fields = self._claim_doc(claim, write_id)

        def op(a: Attempt) -> bool:
            snap = ref.get(**self._kw(a))
            if not snap.exists or int(snap.get("v")) != expected_version:
                # Ours, if an earlier unanswered attempt landed; a claim spent by another refuses.
                return self._claim_landed_or_raise(claim_ref, write_id, a)
            batch = self._client.batch()
            batch.create(claim_ref, claim_fields)
            batch.update(ref, fields, option=self._client.write_option(last_update_time=snap.update_time))
            try:
                batch.commit(**self._kw(a))
                return True
            except self._api.AlreadyExists:
                return self._claim_landed_or_raise(claim_ref, write_id, a)
            except (self._api.FailedPrecondition, self._api.NotFound):
                return self._claim_landed_or_raise(claim_ref, write_id, a)

        return self._run("update_document_claiming", op)

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the gRPC channel if this store opened it (a store never used has none)."""
        if self._owns_client and "_sdk" in self.__dict__:
            self._client.close()


def _raw_id(stored: str) -> str:
    """Invert `firestore_docs.doc_id` (a hashed over-long id cannot be; it comes back hashed)."""
    if stored.startswith("~00"):
        stored = stored[3:]
    return _ESCAPE.sub(lambda m: "/" if m.group(1) == "2F" else "~", stored)


def from_url(url: str, *, clock: Clock) -> FirestoreStore:
    """Open a Firestore store URL.

    Forms: `firestore:projects/PROJECT/databases/DATABASE` (the resource name,
    as Terraform writes it), `firestore:PROJECT[/DATABASE]`, or `firestore:`
    alone (the SDK's default project, database `(default)`). Options:
    `?prefix=P` (collection-name prefix), `?deadline=SECONDS` (retry
    deadline per operation) and `?shards=N` (time-ordered index shards). The SDK itself selects the emulator when
    `FIRESTORE_EMULATOR_HOST` is set in the environment.

    Raises:
        ConfigError: the URL is malformed or has unknown options.
    """
    usage = "store URL must look like firestore:projects/P/databases/D[?prefix=X]"
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "firestore" or parsed.netloc:
        raise ConfigError(usage)
    parts = [p for p in urllib.parse.unquote(parsed.path).split("/") if p]
    if len(parts) == 4 and parts[0] == "projects" and parts[2] == "databases":
        parts = [parts[1], parts[3]]
    if len(parts) > 2 or "projects" in parts[:1]:
        raise ConfigError(usage)
    options = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    unknown = set(options) - {"prefix", "deadline", "shards"}
    if unknown:
        raise ConfigError(f"unknown firestore store option(s): {', '.join(sorted(unknown))}")
    try:
        retry = RetryPolicy(deadline=float(options.get("deadline", "10")))
    except ValueError:
        raise ConfigError("firestore store option deadline must be a positive number") from None
    try:
        shards = firestore_shards.check_shards(int(options.get("shards", str(firestore_shards.DEFAULT_SHARDS))))
    except ValueError:
        limit = firestore_shards.MAX_SHARDS
        raise ConfigError(f"firestore store option shards must be an integer from 1 to {limit}") from None
    return FirestoreStore(
        project=parts[0] if parts else None,
        database=parts[1] if len(parts) > 1 else "(default)",
        prefix=options.get("prefix", ""),
        clock=clock,
        retry=retry,
        shards=shards,
    )


@dataclass(frozen=True)
class _SDK:
    """The SDK modules a store uses, and its client."""

    client: Any
    api_exceptions: Any
    auth_exceptions: Any
    firestore_v1: Any
    field_path: Any


def _connect(client: Any, project: str | None, database: str, deadline: float) -> _SDK:
    """Import the SDK and make (or adopt) the client, with the transaction RPCs bounded by `deadline`."""
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions
    from google.cloud import firestore_v1
    from google.cloud.firestore_v1 import field_path

    if client is None:
        client = firestore_v1.Client(project=project, database=database)
    _bound_transaction_rpcs(client, deadline)
    return _SDK(client=client, api_exceptions=api_exceptions, auth_exceptions=auth_exceptions,
                firestore_v1=firestore_v1, field_path=field_path.FieldPath)  # fmt: skip


def _bound_transaction_rpcs(client: Any, timeout: float) -> None:
    """Give the SDK's BeginTransaction and Rollback our bounds.

    The SDK's `Transaction` calls them without retry or timeout arguments, so they fall
    back to the generated client's defaults: retries on UNAVAILABLE for up to 60 s. With
    Firestore unreachable, one `record_issuance` then hung for a minute in BeginTransaction
    instead of failing within the store's retry deadline and answering 503. Commit keeps the
    SDK's behaviour: it may wait on other transactions' locks (contention on one endpoint),
    and cutting that wait short turns contention into 503s. Calls that pass their own retry
    and timeout (our batches and reads) are unchanged.
    """
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry

    # Only the wait for an unreachable service is bounded; no per-call timeout, so a call
    # that waits its turn behind another transaction is not cut short.
    retry = api_retry.Retry(
        predicate=api_retry.if_exception_type(api_exceptions.ServiceUnavailable),
        initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout,
    )  # fmt: skip
    api = client._firestore_api
    for name in ("begin_transaction", "rollback"):
        original = getattr(api, name)
        if getattr(original, "_cirrus_bounded", False):
            continue

        def bounded(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            kwargs.setdefault("retry", retry)
            return _original(*args, **kwargs)

        bounded._cirrus_bounded = True  # type: ignore[attr-defined]
        setattr(api, name, bounded)
