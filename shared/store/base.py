"""Storage protocols, narrow by role.

A consumer asks for the narrowest role it needs (the CRL builder sees a
`RevocationReader`, the token verifier a `TokenLedger`). One backend object
usually implements all of them; `Store` is their union for the composition root.

Every method is a single durable operation. Backends raise
`shared.errors.BackendError` (with `transient=True` where a retry may succeed)
and never leak SDK exceptions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from shared.inventory.base import InventoryStore
from shared.model import CertificateRecord, Endpoint, Event, Revocation, TokenClaim


class TokenLedger(Protocol):
    """Single-use keys: one-time-token `jti`s, token hashes, ACME nonces."""

    def claim(self, namespace: str, key: str, expires_at: dt.datetime) -> bool:
        """Atomically create `(namespace, key)` if absent.

        Returns True if this call created it, False if it already existed
        (even if expired but not yet purged). Two processes sharing the store
        can never both get True for the same key.
        """
        ...

    def purge_expired(self, now: dt.datetime) -> int:
        """Delete claims whose expiry is before `now`; return how many."""
        ...


class CertificateReader(Protocol):
    """Read access to issued certificates."""

    def get_certificate(self, serial: str) -> CertificateRecord | None:
        """Return the record for a decimal serial, or None."""
        ...

    def list_certificates_by_endpoint(self, endpoint_id: str) -> Sequence[CertificateRecord]:
        """Return an endpoint's certificates, oldest issue first."""
        ...


@dataclass(frozen=True, slots=True)
class IssuanceWrite:
    """One `record_issuance` call's arguments, for recording several in one commit."""

    certificate: CertificateRecord
    new_endpoint: Endpoint | None = None
    events: Sequence[Event] = ()
    claim: TokenClaim | None = None


@runtime_checkable
class BatchIssuanceLedger(Protocol):
    """Several issuances in one commit (group commit), each still all-or-nothing on its own.

    Why: on an embedded database the commit (pages written to the log, later
    copied by the checkpoint) costs more than the rows; under concurrent load
    one commit for several certificates writes the shared pages once. Only
    backends where that holds implement it (SQLite); the rest record one by one.
    """

    def record_issuances(self, writes: Sequence[IssuanceWrite]) -> list[Exception | None]:
        """Record every write in one transaction, each as `record_issuance` would.

        Returns one outcome per write, in order: None when it was recorded, or
        the `TokenAlreadyUsed` / `Conflict` that `record_issuance` would have
        raised (nothing of that write is kept; the others are unaffected).
        Raises `BackendError` when the commit itself fails: then none is recorded.
        """
        ...


class IssuanceLedger(CertificateReader, Protocol):
    """Records an issuance atomically: the certificate, maybe a new endpoint, its events."""

    def record_issuance(
        self,
        certificate: CertificateRecord,
        *,
        new_endpoint: Endpoint | None = None,
        events: Sequence[Event] = (),
        claim: TokenClaim | None = None,
    ) -> None:
        """Store all of it or none of it.

        `claim` is the one-time token that authorised the issuance: it is
        created in the same atomic write, so a replayed token can never yield
        a recorded certificate, and a failed write leaves the token unused
        for the client's retry. Raises `TokenAlreadyUsed` if it exists.

        `new_endpoint` is created if absent; if an endpoint with the same id
        already exists (two instances grouping the same subject at once) the
        existing one is kept and the certificate still attaches to that id.
        Raises `Conflict` if a certificate with the same serial exists.
        """
        ...


class EndpointStore(Protocol):
    """Endpoints: the owners of certificate lineages."""

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Return one endpoint or None."""
        ...

    def list_endpoints(
        self, *, authority_id: str | None = None, limit: int = 100, after: str = ""
    ) -> Sequence[Endpoint]:
        """Return endpoints ordered by id, starting after the id `after`."""
        ...


class RevocationReader(Protocol):
    """What the CRL builder and OCSP responder need."""

    def get_revocation(self, serial: str) -> Revocation | None:
        """Return the revocation of a serial, or None."""
        ...

    def list_revocations(
        self, authority_id: str, *, not_after_since: dt.datetime
    ) -> Sequence[Revocation]:
        """Return revocations of certificates that expire at or after `not_after_since`."""
        ...

    def revoked_since(self, since: dt.datetime) -> bool:
        """Whether any revocation (of any authority) has `revoked_at` at or after `since`.

        Why: the CRL schedule publishes soon after a revocation; asking this is one
        indexed lookup, where reading the event log decodes every issuance too.
        """
        ...


class RevocationStore(RevocationReader, Protocol):
    """Revocation writes."""

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Record a revocation (create-if-absent) with its events, atomically.

        Raises `shared.errors.AlreadyRevoked` if the serial is already revoked.
        """
        ...


@dataclass(frozen=True, slots=True)
class EndpointMonth:
    """One endpoint's usage in one calendar month (UTC), as the stores keep it (`shared.metering`).

    `billable_from`/`billable_to` bound the instants of the month at which the endpoint had an
    active certificate (`billable_to` exclusive); `peak_active` is the most active at once.
    `authority_id` and `name` are copied from the endpoint so a report reads nothing else.
    """

    month: str
    endpoint_id: str
    authority_id: str
    name: str
    billable_from: dt.datetime
    billable_to: dt.datetime
    peak_active: int


@runtime_checkable
class UsageReader(Protocol):
    """The per-endpoint-month usage records, maintained by every issuance and revocation."""

    def list_endpoint_months(self, month: str, *, authority_id: str | None = None) -> Sequence[EndpointMonth]:
        """Return the month's records (`YYYY-MM`), ordered by endpoint id.

        Raises:
            ValueError: `month` is not a `YYYY-MM` month.
        """
        ...


@dataclass(frozen=True, slots=True)
class MonthTotal:
    """A month's usage in two numbers: billable endpoints and endpoint-months (`shared.usage`)."""

    month: str
    endpoints: int
    endpoint_months: int


@runtime_checkable
class UsageQueries(Protocol):
    """The dashboard's reads of the usage records: a month's totals by an aggregate query, and
    its records a page at a time, so neither reads one record per billable endpoint.

    `endpoint_months` follows `metering.units`: `endpoints + sum(max(0, peak_active - 3))`.
    """

    def page_endpoint_months(self, month: str, *, after: str = "", limit: int = 50) -> Sequence[EndpointMonth]:
        """The month's records with endpoint id above `after`, by endpoint id, at most `limit`.

        Raises:
            ValueError: `month` is not a `YYYY-MM` month.
        """
        ...

    def usage_total(self, month: str, *, authority_id: str | None = None) -> MonthTotal:
        """The month's totals (zero when it has no records).

        Raises:
            ValueError: `month` is not a `YYYY-MM` month.
        """
        ...


class EventLog(Protocol):
    """The append-only event log."""

    def append_events(self, events: Sequence[Event]) -> None:
        """Append events that were not recorded together with an issuance."""
        ...

    def list_events(self, *, since: dt.datetime | None = None, limit: int = 100) -> Sequence[Event]:
        """Return events ordered by time (then id)."""
        ...


class Counter(Protocol):
    """Strictly increasing numbers shared by all instances (CRL numbers)."""

    def next_value(self, name: str) -> int:
        """Atomically increment the named counter and return its new value (first is 1)."""
        ...


class DocumentStore(Protocol):
    """Versioned JSON documents with compare-and-set, for protocol state (ACME).

    Documents are small JSON objects keyed by (collection, id). `version`
    starts at 1 on create and increases by one on each successful update, so
    concurrent instances detect lost updates instead of overwriting.
    """

    def create_document(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create if absent; return False (and change nothing) if it exists."""
        ...

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        ...

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_document` for each `(collection, id)`, in order, in one round trip.

        Why: an authenticated ACME request reads its account and the order it
        names; one statement (one RPC on Firestore) instead of two.
        """
        ...

    def update_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int
    ) -> bool:
        """Replace the document if its version is `expected_version`; False otherwise."""
        ...

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Return `(id, data, version)` of documents whose top-level `field` equals `value`."""
        ...

    def create_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        claim: TokenClaim,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """`create_document` and `TokenLedger.claim` in one atomic write.

        Why: an ACME request that writes one document also spends its nonce;
        doing both in one transaction halves its writes, and the request
        still cannot take effect twice. Raises `TokenAlreadyUsed` (and writes
        nothing) if the claim exists; returns False (and claims nothing) if
        the document exists.
        """
        ...

    def update_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expected_version: int,
        claim: TokenClaim,
    ) -> bool:
        """`update_document` and `TokenLedger.claim` in one atomic write.

        Raises `TokenAlreadyUsed` (and writes nothing) if the claim exists;
        returns False (and claims nothing, so a compare-and-set retry can
        claim it again) if the document is missing or not at `expected_version`.
        """
        ...


@runtime_checkable
class Store(
    TokenLedger,
    IssuanceLedger,
    EndpointStore,
    RevocationStore,
    EventLog,
    Counter,
    DocumentStore,
    InventoryStore,
    Protocol,
):
    """Every role; what a backend implements and the composition root holds."""

    def close(self) -> None:
        """Release connections."""
        ...
