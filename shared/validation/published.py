"""The OCSP responder's data source: CRLs as published in the blob store.

The responder is shared-nothing: it knows only what the validation authority
published. A CRL is accepted only if its signature verifies with the
issuer's key, its issuer is the CA's subject, it has a cRLNumber and a
nextUpdate, its IssuingDistributionPoint is the one expected for the shard,
and its cRLNumber is not lower than the one already loaded (no rollback).
Anything else is refused and counted in `failures`, and the last good CRL
keeps serving until its nextUpdate passes.

Parsed CRLs are cached per blob generation. The blob is re-read at most every
`recheck` (or at once when the loaded CRL's nextUpdate has passed), and
re-parsed only when its generation changed. Entries are indexed by serial to
their offset in the DER; the date and reason are decoded on lookup, which
keeps a million-entry index near 100 MB.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field

from cryptography import x509

from shared.blobs.base import BlobStore
from shared.clock import Clock
from shared.errors import BackendError
from shared.validation import der
from shared.validation.partition import blob_name

_log = logging.getLogger(__name__)
_REASON_OID = der.oid("2.5.29.21")


class InvalidCRL(ValueError):
    """A published CRL failed a check and was not loaded."""


@dataclass(frozen=True, slots=True)
class RevokedStatus:
    """A serial's entry in a CRL; `reason` None when the CRL gives none."""

    revoked_at: dt.datetime
    reason: int | None


@dataclass(slots=True)
class LoadedCRL:
    """A verified CRL and its serial index."""

    generation: int
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    data: bytes
    index: dict[int, int] = field(repr=False)

    def lookup(self, serial: int) -> RevokedStatus | None:
        """Return the serial's revocation, or None if the CRL does not list it."""
        pos = self.index.get(serial)
        if pos is None:
            return None
        buf = self.data
        start, end = der.expect(buf, pos, der.SEQUENCE)
        _, _, after_serial = der.read_tlv(buf, start, end)
        _, _, after_time = der.read_tlv(buf, after_serial, end)
        revoked_at = der.parse_time(buf[after_serial:after_time])
        reason: int | None = None
        if after_time < end:
            ext_start, ext_end = der.expect(buf, after_time, der.SEQUENCE, end)
            pos = ext_start
            while pos < ext_end:
                e_start, e_end = der.expect(buf, pos, der.SEQUENCE, ext_end)
                _, _, oid_end = der.read_tlv(buf, e_start, e_end)
                if buf[e_start:oid_end] == _REASON_OID:
                    value_start = oid_end
                    if buf[value_start] == 0x01:  # critical flag present
                        _, _, value_start = der.read_tlv(buf, value_start, e_end)
                    os_start, os_end = der.expect(buf, value_start, der.OCTET_STRING, e_end)
                    en_start, en_end = der.expect(buf, os_start, der.ENUMERATED, os_end)
                    reason = int.from_bytes(buf[en_start:en_end], "big")
                pos = e_end
        return RevokedStatus(revoked_at, reason)


def _index_entries(tbs: bytes) -> dict[int, int]:
    """Map each serial in `revokedCertificates` to its entry's offset in the CRL.

    `tbs` is the whole CertificateList; the TBSCertList is its first element.
    """
    outer_start, outer_end = der.expect(tbs, 0, der.SEQUENCE)
    start, end = der.expect(tbs, outer_start, der.SEQUENCE, outer_end)
    pos = start
    tag, _, stop = der.read_tlv(tbs, pos, end)
    if tag == der.INTEGER:  # version
        pos = stop
    for _ in range(4):  # signature, issuer, thisUpdate, nextUpdate
        _, _, pos = der.read_tlv(tbs, pos, end)
    index: dict[int, int] = {}
    if pos >= end or tbs[pos] != der.SEQUENCE:
        return index  # no revokedCertificates
    list_start, list_end = der.expect(tbs, pos, der.SEQUENCE, end)
    pos = list_start
    from_bytes = int.from_bytes
    while pos < list_end:
        if tbs[pos] != der.SEQUENCE:
            raise der.DERError("revoked entry is not a SEQUENCE")
        first = tbs[pos + 1]
        if first < 0x80 and tbs[pos + 2] == der.INTEGER and tbs[pos + 3] < 0x80:
            entry_end = pos + 2 + first  # the short-form fast path every Cirrus CRL takes
            serial_end = pos + 4 + tbs[pos + 3]
            if entry_end > list_end or serial_end > entry_end:
                raise der.DERError("revoked entry overruns the list")
            serial = from_bytes(tbs[pos + 4 : serial_end], "big", signed=True)
        else:
            e_start, entry_end = der.expect(tbs, pos, der.SEQUENCE, list_end)
            s_start, s_end = der.expect(tbs, e_start, der.INTEGER, entry_end)
            serial = from_bytes(tbs[s_start:s_end], "big", signed=True)
        index[serial] = pos
        pos = entry_end
    return index


def load_crl(data: bytes, *, generation: int, issuer: x509.Certificate, distribution_point: str | None) -> LoadedCRL:
    """Verify a published CRL against its issuer and index it.

    Raises:
        InvalidCRL: it does not parse, verify, or belong where it was found.
    """
    try:
        crl = x509.load_der_x509_crl(data)
        if crl.issuer != issuer.subject:
            raise InvalidCRL("issuer is not the CA's subject")
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            raise InvalidCRL("signature does not verify with the CA key")
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        next_update = crl.next_update_utc
        if next_update is None:
            raise InvalidCRL("nextUpdate is missing")
        try:
            idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
            uris = [n.value for n in idp.full_name or [] if isinstance(n, x509.UniformResourceIdentifier)]
        except x509.ExtensionNotFound:
            uris = []
        if distribution_point is not None and uris != [distribution_point]:
            raise InvalidCRL("IssuingDistributionPoint does not name this shard")
        if distribution_point is None and uris:
            raise InvalidCRL("a full CRL must not carry a distribution point")
        index = _index_entries(data)
    except InvalidCRL:
        raise
    except (ValueError, x509.ExtensionNotFound, IndexError) as exc:
        raise InvalidCRL(f"malformed CRL: {exc}") from exc
    return LoadedCRL(generation, number, crl.last_update_utc, next_update, data, index)


@dataclass(slots=True)
class _Slot:
    crl: LoadedCRL | None = None
    checked_at: dt.datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class PublishedCRLs:
    """Loads, verifies and caches published CRLs for the responder."""

    def __init__(
        self,
        *,
        blobs: BlobStore,
        clock: Clock,
        recheck: dt.timedelta = dt.timedelta(seconds=60),
    ) -> None:
        """Read from `blobs`, looking for a new generation at most every `recheck`."""
        self._blobs = blobs
        self._clock = clock
        self._recheck = recheck
        self._slots: dict[tuple[str, int | None], _Slot] = {}
        self._slots_lock = threading.Lock()
        self.failures = 0

    def get(
        self,
        authority_id: str,
        shard: int | None,
        *,
        issuer: x509.Certificate,
        distribution_point: str | None,
    ) -> LoadedCRL | None:
        """The current CRL for a scope, or None if none valid is available now."""
        key = (authority_id, shard)
        with self._slots_lock:
            slot = self._slots.setdefault(key, _Slot())
        now = self._clock.now()
        crl = slot.crl
        fresh = slot.checked_at is not None and now - slot.checked_at < self._recheck
        if crl is not None and crl.next_update > now and fresh:
            return crl
        with slot.lock:
            if (
                slot.checked_at is None
                or now - slot.checked_at >= self._recheck
                or (slot.crl is not None and slot.crl.next_update <= now)
            ):
                self._refresh(slot, authority_id, shard, issuer, distribution_point, now)
            crl = slot.crl
        if crl is None or crl.next_update <= now:
            return None
        return crl

    def _refresh(
        self,
        slot: _Slot,
        authority_id: str,
        shard: int | None,
        issuer: x509.Certificate,
        distribution_point: str | None,
        now: dt.datetime,
    ) -> None:
        name = blob_name(authority_id, shard)
        try:
            blob = self._blobs.read(name)
        except BackendError as exc:
            _log.warning("cannot read %s, serving the last good CRL: %s", name, exc)
            return  # checked_at unchanged: try again on the next request
        slot.checked_at = now
        if blob is None or (slot.crl is not None and blob.generation == slot.crl.generation):
            return
        try:
            loaded = load_crl(
                blob.data,
                generation=blob.generation,
                issuer=issuer,
                distribution_point=distribution_point,
            )
            if slot.crl is not None and loaded.number < slot.crl.number:
                raise InvalidCRL(f"cRLNumber went back from {slot.crl.number} to {loaded.number}")
        except InvalidCRL as exc:
            self.failures += 1
            _log.error("refused %s generation %d: %s", name, blob.generation, exc)
            return
        slot.crl = loaded
