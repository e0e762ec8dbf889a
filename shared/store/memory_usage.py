"""The memory store's endpoint-month records (`shared.metering`), kept under the store's lock.

Split from `shared.store.memory` by concern. An issuance folds the new certificate into its
endpoint's month records and a revocation recomputes the months it cut short, each inside
the same locked call as the write, so the records never disagree with what they summarise.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from shared import metering
from shared.model import CertificateRecord, Endpoint, Revocation
from shared.store import codec
from shared.store.base import EndpointMonth, MonthTotal


class MemoryUsage:
    """Metering on the store's dictionaries (`MemoryStore.__init__` creates them)."""

    _lock: threading.RLock
    _certificates: dict[str, CertificateRecord]
    # endpoint id -> (issued_at in epoch us, serial), in issue order
    _by_endpoint: dict[str, list[tuple[int, str]]]
    _endpoints: dict[str, Endpoint]
    _revocations: dict[str, Revocation]
    # (month, endpoint id) -> usage, authority id, name
    _usage: dict[tuple[str, str], tuple[metering.MonthUsage, str, str]]

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
