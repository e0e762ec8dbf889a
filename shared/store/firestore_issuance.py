"""The Firestore store's issuance records: certificates, endpoints and the one-transaction issuance write.

Split from `shared.store.firestore` by concern. An issuance is one transaction: it reads
the token claim, the certificate and endpoint documents (to tell a replay, a serial clash
or an existing endpoint), the endpoint's certificates still active after the new one
starts with their revocations, and the endpoint-month usage documents the new
certificate spans (`firestore_usage`); then it creates the claim, the certificate
(carrying the issuance's events) and, when new, the endpoint, and sets those usage
documents. Usage needs the reads, and keeping it in the same transaction is what makes
it exact with several instances writing at once. The usage documents are the lock: the
endpoint's certificates are queried after them and outside the transaction's lock set
(`firestore_usage` says why that stays exact), so issuances into different endpoints
never wait on each other. Document writes per issued certificate: the claim (1) + the
certificate (1) + the endpoint only when new (1) + one usage document per month the
certificate spans (1, or 2 across a month end).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from shared import metering
from shared.errors import BackendError, Conflict, TokenAlreadyUsed
from shared.model import CertificateRecord, Endpoint, Event, TokenClaim
from shared.retry import Attempt
from shared.store import codec, firestore_usage
from shared.store import firestore_docs as docs
from shared.store.firestore_usage import FirestoreUsage


class FirestoreIssuance(FirestoreUsage):
    """Certificate and endpoint point reads, and recording an issuance."""

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
            claim_ref, claim_fields = self._claim_doc(claim, write_id)

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
