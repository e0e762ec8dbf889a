"""The Firestore store's connection: the SDK on first use, retries, error translation, transactions.

Split from `shared.store.firestore` so each storage role (`firestore_issuance`,
`firestore_revocations`, `firestore_documents`, `firestore_queries`, ...) builds on one
fault discipline instead of repeating it. SDK errors become `BackendError` (transient for
unavailable, deadline, aborted, internal and resource-exhausted), every operation runs
under `shared.retry.RetryPolicy` with a deadline, and the SDK's own retries are switched
off so that deadline is the only one. A write whose answer was lost may have been
applied; each write therefore carries a random write id `w`, and a retry that meets
"already exists" checks whether the document is its own earlier attempt
(`_is_own_write`).

The SDK (`google.cloud.firestore`, ~260 ms to import) is imported, and the client made,
on the store's first operation, not in the constructor: a function that opens the store
but never reads it (the OCSP responder answers from the bucket) never pays for it. The
SDK's handles are `functools.cached_property`s over that one connection, so after it they
are plain instance attributes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.errors import BackendError
from shared.model import TokenClaim
from shared.retry import Attempt, RetryPolicy
from shared.store import codec, firestore_shards
from shared.store import firestore_docs as docs

T = TypeVar("T")

# Commits of one transaction the SDK tries before contention counts as a transient failure.
_TRANSACTION_ATTEMPTS = 5


class FirestoreConnection:
    """The SDK handles and the plumbing every role runs its operations through.

    `FirestoreStore.__init__` sets the attributes declared here.
    """

    shards: int
    prefix: str
    _project: str | None
    _database: str
    _given_client: Any
    _owns_client: bool
    _retry: RetryPolicy
    _connect_lock: threading.Lock

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

    def _create_if_absent(self, what: str, ref: Any, fields: dict[str, Any], write_id: str) -> bool:
        """Create the document; True only for the call that created it (its own lost answer included)."""

        def op(a: Attempt) -> bool:
            try:
                ref.create(fields, **self._kw(a))
                return True
            except self._api.AlreadyExists:
                return self._is_own_write(ref, write_id, a)

        return self._run(what, op)

    def _claim_doc(self, claim: TokenClaim, write_id: str) -> tuple[Any, dict[str, Any]]:
        """The claim document's reference and fields, as `claim` writes them."""
        expire = codec.require_aware(claim.expires_at, "expires_at")
        ref = self._col(docs.CLAIMS).document(docs.claim_id(claim.namespace, claim.key))
        shard = self._shard(ref.id)
        return ref, {"ns": claim.namespace, "key": claim.key, "expireAt": expire, "w": write_id, "shard": shard}

    def _shard(self, doc_id: str) -> int:
        """The `shard` field of the document with (stored) id `doc_id`."""
        return firestore_shards.shard_of(doc_id, self.shards)

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

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the gRPC channel if this store opened it (a store never used has none)."""
        if self._owns_client and "_sdk" in self.__dict__:
            self._client.close()


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
