"""The serverless `Store`: Cloud Firestore (native mode).

Every method is one durable operation built from Firestore's own atomic
primitives, without read-then-write races and, on the issuance path, without
reads at all:

- Single-use claims (token `jti`s, ACME nonces) and create-if-absent records
  use `create()`, which the server rejects if the document exists: two
  instances can never both win.
- An issuance is one atomic batch: the certificate document (carrying the
  issuance's events) and, when the endpoint is new, the endpoint document,
  both as creates. If the endpoint already exists the batch is re-sent with
  the certificate alone, so the first endpoint is kept. Document writes per
  issued certificate: the token claim (1) + the certificate with its events
  (1) + the endpoint only when it is new (1) = at most 3.
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

The SDK (`google.cloud.firestore`, ~260 ms to import) is imported in the
constructor only. Collection names take a configurable prefix so several
stores (tests, deployments) can share one database. The layout is described
in `firestore_docs.py`; the composite indexes and TTL policies it needs are in
`firestore_indexes.json`.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from shared.clock import Clock, SystemClock
from shared.errors import AlreadyRevoked, BackendError, ConfigError, Conflict, TokenAlreadyUsed
from shared.model import CertificateRecord, Endpoint, Event, Revocation, TokenClaim
from shared.retry import Attempt, RetryPolicy
from shared.store import codec, firestore_shards
from shared.store import firestore_docs as docs
from shared.store.firestore_queries import ShardedQueries

T = TypeVar("T")

_ESCAPE = re.compile("~(7E|2F)")


class FirestoreStore(ShardedQueries):
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
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        from google.cloud import firestore
        from google.cloud.firestore_v1 import FieldFilter, Increment
        from google.cloud.firestore_v1.field_path import FieldPath

        self._api = api_exceptions
        self._auth = auth_exceptions
        self._filter = FieldFilter
        self._increment = Increment
        self._field_path = FieldPath
        self._document_id = FieldPath.document_id()
        self._ascending = firestore.Query.ASCENDING
        self._transient: tuple[type[BaseException], ...] = (
            api_exceptions.ServiceUnavailable,
            api_exceptions.DeadlineExceeded,
            api_exceptions.Aborted,
            api_exceptions.InternalServerError,
            api_exceptions.ResourceExhausted,
            api_exceptions.RetryError,
            auth_exceptions.TransportError,
        )
        self._owns_client = client is None
        self._client = client or firestore.Client(project=project, database=database)
        self._clock: Clock = clock or SystemClock()
        self._retry = retry or RetryPolicy()
        self.prefix = prefix

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
        """Write the token claim, the certificate (with its events) and a new endpoint in one atomic batch."""
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

        def commit(a: Attempt, with_endpoint: bool) -> None:
            batch = self._client.batch()
            if claim_ref is not None:
                batch.create(claim_ref, claim_fields)
            batch.create(cert_ref, cert_fields)
            if with_endpoint:
                batch.create(endpoint_ref, endpoint_fields)
            batch.commit(**self._kw(a))

        def landed_or_raise(a: Attempt) -> bool:
            """After AlreadyExists: True if our own earlier attempt landed; raise if a claim/serial clash."""
            # The batch is atomic: our write id on the claim (or the certificate) means all of it landed.
            if claim_ref is not None:
                snap = claim_ref.get(**self._kw(a))
                if snap.exists:
                    if (snap.to_dict() or {}).get("w") == write_id:
                        return True
                    raise TokenAlreadyUsed()
            if cert_ref.get(**self._kw(a)).exists:
                if self._is_own_write(cert_ref, write_id, a):
                    return True
                raise Conflict(f"certificate with serial number '{certificate.serial}' already exists")
            return False

        def op(a: Attempt) -> None:
            with_endpoint = endpoint_ref is not None
            for _ in range(2):
                try:
                    commit(a, with_endpoint)
                    return
                except self._api.AlreadyExists:
                    if landed_or_raise(a):
                        return
                    if not with_endpoint:
                        raise
                    # The endpoint exists (another instance grouped the same subject
                    # first): keep it and attach the certificate to it.
                    with_endpoint = False

        self._run("record_issuance", op)

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

        def op(a: Attempt) -> None:
            try:
                ref.create(fields, **self._kw(a))
            except self._api.AlreadyExists:
                if not self._is_own_write(ref, write_id, a):
                    raise AlreadyRevoked(revocation.serial) from None

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
        """Close the gRPC channel if this store opened it."""
        if self._owns_client:
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
