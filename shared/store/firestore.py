"""The serverless `Store`: Cloud Firestore (native mode).

Every method is one durable operation built from Firestore's own atomic
primitives, without read-then-write races:

- Single-use claims (token `jti`s, ACME nonces) and create-if-absent records
  use `create()`, which the server rejects if the document exists: two
  instances can never both win.
- An issuance is one transaction (`firestore_issuance` says what it reads and
  writes), and so is a revocation (`firestore_revocations`); both keep the
  endpoint-month usage documents exact in the same transaction (`firestore_usage`).
- Compare-and-set documents carry a version; an update is sent with the
  server's `update_time` as precondition, so a concurrent writer makes it fail
  instead of being overwritten (`firestore_documents`).
- Counters use the server-side `Increment` transform, whose result comes back
  with the write: atomic, no transaction, no contention retries on a hot
  document.

`FirestoreStore` is composed of one mixin per concern: the connection, retries and
transactions (`firestore_connection`, which says how faults and lost answers are
handled and why the SDK is imported on first use), issuance, revocations, usage,
documents, the sharded time-ordered queries (`firestore_queries`) and inventories
(`firestore_inventory`). This module keeps the small roles: the token claim, the
event append and counters. A lost counter answer can skip a number (never repeat
one), which CRL numbering allows.

Collection names take a configurable prefix so several
stores (tests, deployments) can share one database. The layout is described
in `firestore_docs.py`; the composite indexes and TTL policies it needs are in
`firestore_indexes.json`.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import urllib.parse
from collections.abc import Sequence
from typing import Any

from shared.clock import Clock, SystemClock
from shared.errors import ConfigError
from shared.model import Event, TokenClaim
from shared.retry import Attempt, RetryPolicy
from shared.store import firestore_docs as docs
from shared.store import firestore_shards
from shared.store.firestore_documents import FirestoreDocuments
from shared.store.firestore_inventory import FirestoreInventories
from shared.store.firestore_issuance import FirestoreIssuance
from shared.store.firestore_queries import ShardedQueries
from shared.store.firestore_revocations import FirestoreRevocations


class FirestoreStore(FirestoreIssuance, FirestoreRevocations, FirestoreDocuments, ShardedQueries, FirestoreInventories):
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

    # ----------------------------------------------------------------- TokenLedger

    def claim(self, namespace: str, key: str, expires_at: dt.datetime) -> bool:
        """Create the claim document; True only for the call that created it."""
        ref, fields = self._claim_doc(TokenClaim(namespace, key, expires_at), secrets.token_hex(8))
        return self._create_if_absent("claim", ref, fields, fields["w"])

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
