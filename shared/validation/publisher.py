"""Publish CRLs to the blob store without ever replacing a newer one.

Several publishers may run at once (a scheduled Cloud Function, `cirrus crl
publish`, publish-on-revoke). Each takes its cRLNumber from the shared
`Counter` (strictly increasing across instances and restarts, CRL-03), then
reads the published object, and writes only with `if_generation_match` set to
the generation it read. If the stored CRL already carries a cRLNumber at least
as high as ours, a newer publisher got there first and we stand down; if the
precondition fails, we re-read and decide again. So the object's cRLNumber
never goes backwards, whatever the interleaving.

The counter is drawn *before* revocations are read, so the publisher holding
the higher number also started reading later and its view is at least as
fresh at its start.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from shared.blobs.base import BlobStore, PreconditionFailed
from shared.clock import Clock
from shared.errors import BackendError, ConfigError
from shared.events.base import CRL_PUBLISHED, EVENT_SOURCE, EventSink
from shared.keys.base import Signer
from shared.model import Event
from shared.store.base import Counter, RevocationReader
from shared.validation.crl import CRLBuilder, CRLScope, RevokedEntry
from shared.validation.partition import blob_name, crl_url, shard_for_serial

CRL_CONTENT_TYPE = "application/pkix-crl"
_WRITE_ATTEMPTS = 8
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CRLAuthority:
    """One CA whose revocations get a CRL.

    `shards` 0 publishes one full CRL; N >= 1 partitions it by `serial mod N`
    (the config's `crl.shards`, same meaning as in the certificate profile's
    CDP), and each shard names its URL in a critical IssuingDistributionPoint.
    `authority_list` marks the root's ARL (its revocations are intermediates).
    """

    authority_id: str
    certificate: x509.Certificate
    signer: Signer
    shards: int = 0
    authority_list: bool = False


@dataclass(frozen=True, slots=True)
class CRLSchedule:
    """Timing and addressing shared by every CRL a deployment publishes.

    Attributes:
        base_url: where CRLs are fetched from; `crl_url(base_url, ...)` is the
            CDP in certificates and the IDP in shards.
        validity: nextUpdate - thisUpdate (BR: at most 10 days for subscriber CRLs).
        interval: how often publication runs. Entries stay until their
            certificate has been expired for one interval, so at least one
            scheduled CRL after expiry still lists them (CRL-06).
        cache_max_age: the longest an HTTP cache may keep a CRL, so a new
            revocation propagates within this many seconds.
    """

    base_url: str
    validity: dt.timedelta = dt.timedelta(days=7)
    interval: dt.timedelta = dt.timedelta(days=1)
    cache_max_age: int = 3600

    def __post_init__(self) -> None:
        if self.validity <= self.interval:
            raise ConfigError("CRL validity must be longer than the publication interval")
        if self.interval <= dt.timedelta(0) or self.cache_max_age < 0:
            raise ConfigError("CRL interval and cache max-age must be positive")
        try:
            crl_url(self.base_url, "probe", None)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one publication did. `generation` is None when a newer CRL was already there."""

    authority_id: str
    shard: int | None
    blob_name: str
    number: int
    entries: int
    size: int
    generation: int | None
    superseded_by: int | None = None


def counter_name(authority_id: str, shard: int | None) -> str:
    """The Counter that numbers one CRL scope."""
    return f"crl:{authority_id}:{'full' if shard is None else shard}"


def stored_crl_number(data: bytes) -> int | None:
    """The cRLNumber of a published CRL, or None if it cannot be read.

    An unreadable object is treated as "older than anything" so a corrupted
    upload is replaced by the next good publication.
    """
    try:
        crl = x509.load_der_x509_crl(data)
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (ValueError, x509.ExtensionNotFound):
        return None


class CRLPublisher:
    """Builds, signs and publishes every configured CRL."""

    def __init__(
        self,
        *,
        revocations: RevocationReader,
        counter: Counter,
        blobs: BlobStore,
        clock: Clock,
        schedule: CRLSchedule,
        authorities: Sequence[CRLAuthority],
        events: EventSink | None = None,
    ) -> None:
        """Wire the publisher; builders for each authority are prepared once."""
        ids = [a.authority_id for a in authorities]
        if len(set(ids)) != len(ids):
            raise ConfigError("duplicate authority id in CRL configuration")
        for a in authorities:
            if a.shards < 0:
                raise ConfigError("CRL shards must be 0 (unpartitioned) or more")
            blob_name(a.authority_id, None)  # validates the id for URLs
        self._revocations = revocations
        self._counter = counter
        self._blobs = blobs
        self._clock = clock
        self._events = events
        self.schedule = schedule
        self.authorities = {a.authority_id: a for a in authorities}
        self._builders = {a.authority_id: CRLBuilder(certificate=a.certificate, signer=a.signer) for a in authorities}

    def publish(self, authority_id: str | None = None) -> list[PublishResult]:
        """Publish the CRL(s) of one authority, or of all of them."""
        if authority_id is not None and authority_id not in self.authorities:
            raise ConfigError(f"no CRL configuration for authority {authority_id!r}")
        targets = [authority_id] if authority_id is not None else list(self.authorities)
        results: list[PublishResult] = []
        for aid in targets:
            results.extend(self._publish_authority(self.authorities[aid]))
        return results

    def _publish_authority(self, authority: CRLAuthority) -> list[PublishResult]:
        aid = authority.authority_id
        shards: list[int | None] = [None] if authority.shards == 0 else list(range(authority.shards))
        numbers = {shard: self._counter.next_value(counter_name(aid, shard)) for shard in shards}
        now = self._clock.now().replace(microsecond=0)
        revoked = self._revocations.list_revocations(aid, not_after_since=now - self.schedule.interval)
        buckets: dict[int | None, list[RevokedEntry]] = {shard: [] for shard in shards}
        if authority.shards == 0:
            buckets[None] = [(int(r.serial), r.revoked_at, r.reason_code) for r in revoked]
        else:
            n = authority.shards
            for r in revoked:
                serial = int(r.serial)
                buckets[shard_for_serial(serial, n)].append((serial, r.revoked_at, r.reason_code))
        del revoked
        next_update = now + self.schedule.validity
        max_age = min(self.schedule.cache_max_age, int(self.schedule.validity.total_seconds()))
        cache_control = f"public, max-age={max_age}, no-transform"
        results = []
        for shard in shards:
            entries = buckets.pop(shard)
            scope = CRLScope(
                distribution_point=None if shard is None else crl_url(self.schedule.base_url, aid, shard),
                authority=authority.authority_list,
            )
            data = self._builders[aid].build(
                entries,
                number=numbers[shard],
                this_update=now,
                next_update=next_update,
                scope=scope,
            )
            results.append(self._write(aid, shard, data, numbers[shard], len(entries), cache_control))
            del data, entries
        self._announce(results, now)
        return results

    def _write(
        self,
        aid: str,
        shard: int | None,
        data: bytes,
        number: int,
        entries: int,
        cache_control: str,
    ) -> PublishResult:
        name = blob_name(aid, shard)
        for _ in range(_WRITE_ATTEMPTS):
            current = self._blobs.read(name)
            generation = 0
            if current is not None:
                generation = current.generation
                stored = stored_crl_number(current.data)
                if stored is not None and stored >= number:
                    return PublishResult(aid, shard, name, number, entries, len(data), None, stored)
            try:
                written = self._blobs.write(
                    name,
                    data,
                    content_type=CRL_CONTENT_TYPE,
                    if_generation_match=generation,
                    cache_control=cache_control,
                )
            except PreconditionFailed:
                continue  # someone wrote in between: re-read and compare numbers again
            return PublishResult(aid, shard, name, number, entries, len(data), written)
        raise BackendError(f"{name}: gave up after {_WRITE_ATTEMPTS} conflicting writes", transient=True)

    def _announce(self, results: Sequence[PublishResult], now: dt.datetime) -> None:
        if self._events is None:
            return
        events = [
            Event(
                id=uuid.uuid4().hex,
                type=CRL_PUBLISHED,
                source=EVENT_SOURCE,
                subject=r.blob_name,
                time=now,
                data={
                    "authorityId": r.authority_id,
                    "shard": r.shard,
                    "crlNumber": r.number,
                    "entries": r.entries,
                    "url": crl_url(self.schedule.base_url, r.authority_id, r.shard),
                },
            )
            for r in results
            if r.generation is not None
        ]
        if events:
            try:
                self._events.publish(events)
            except BackendError as exc:  # the CRL is out; the event log sweep re-delivers
                _log.warning("crl.published event not delivered: %s", exc)
