"""The memory store's issuance records: certificates, endpoints and the all-or-nothing issuance write.

Split from `shared.store.memory` by concern. Records go through the same row codec as
SQLite on the way in, so a record read back is normalised exactly as a durable backend
would return it, and a record the codec refuses raises before anything changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from shared.errors import Conflict, TokenAlreadyUsed
from shared.model import CertificateRecord, Endpoint, Event, TokenClaim
from shared.store import codec
from shared.store.base import IssuanceWrite
from shared.store.memory_events import MemoryEvents
from shared.store.memory_usage import MemoryUsage


class MemoryIssuance(MemoryUsage, MemoryEvents):
    """Certificate and endpoint reads, and recording issuances."""

    # (token namespace, key) -> expires_at in epoch us
    _claims: dict[tuple[str, str], int]

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
