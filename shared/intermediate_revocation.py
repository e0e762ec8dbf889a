"""Revoking an intermediate: the root's authority revocation list (ARL).

`cirrus ca revoke-intermediate` runs where the root key is. It reads the ARL
already published for that root (verifying it with the root's key, so a
tampered object is never the base of the next one), adds the intermediate,
signs the new ARL with the root key and publishes it to the blob store with a
generation precondition. The published ARL is the only record of which
intermediates are revoked: the ceremony machine needs no access to the
online store, and the online CA trusts nothing it cannot verify with a root
it is configured with.

The cRLNumber is the published one plus one (the root signs rarely and from
one place, so no shared `Counter` is needed; the precondition still stops two
ceremonies from overwriting each other). The ARL is valid for `validity`
(default a year: roots sign offline, so it must be re-signed before then,
`cirrus ca revoke-intermediate --resign`).

`RevokedIntermediates` is the online side: it reads the ARL of every root
from the blob store (re-read after `recheck`), verifies it, and answers
whether a certificate's issuer is listed; `shared.authority` refuses to
renew such certificates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.blobs.base import Blob, BlobStore, PreconditionFailed
from shared.errors import BackendError
from shared.keys.base import Signer
from shared.validation.partition import blob_name

CRL_CONTENT_TYPE = "application/pkix-crl"
DEFAULT_VALIDITY = dt.timedelta(days=365)
_log = logging.getLogger(__name__)


class RevocationCeremonyError(Exception):
    """The intermediate cannot be revoked as asked (the message says why)."""


def root_id(root: x509.Certificate) -> str:
    """The ARL's name part for a root: `root-` and 16 hex digits of its SHA-256 fingerprint.

    Why a fingerprint and not the authority id: one root may stand above several
    issuing authorities (and deployments), and its ARL is one object.
    """
    return "root-" + hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()[:16]


def arl_blob_name(root: x509.Certificate) -> str:
    """Where a root's ARL is published: `crl/root-<fp>.crl`, beside the issuing CRLs."""
    return blob_name(root_id(root), None)


class ARLSource(Protocol):
    """Where published ARLs are read: the blob store, or (a registration authority) the upstream's
    `/crl/` over HTTPS (`shared.ra.arl`)."""

    def read(self, name: str) -> Blob | None:
        """The object, or None if absent; raises `BackendError` when it cannot tell."""
        ...


def read_arl(blobs: ARLSource, root: x509.Certificate) -> tuple[x509.CertificateRevocationList, int] | None:
    """The published ARL of `root` and its blob generation, or None if none is published.

    Raises:
        RevocationCeremonyError: an object is there but is not an ARL signed by this root.
    """
    blob = blobs.read(arl_blob_name(root))
    if blob is None:
        return None
    try:
        crl = x509.load_der_x509_crl(blob.data)
        valid = crl.issuer == root.subject and crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise RevocationCeremonyError(f"{blob.name}: not a CRL") from exc
    if not valid:
        raise RevocationCeremonyError(f"{blob.name}: not signed by this root")
    return crl, blob.generation


@dataclass(frozen=True, slots=True)
class PublishedARL:
    """What a ceremony published."""

    blob_name: str
    number: int
    revoked_serials: tuple[int, ...]
    der: bytes


def revoke_intermediate(
    *,
    root_signer: Signer,
    root: x509.Certificate,
    intermediate: x509.Certificate | None,
    blobs: BlobStore,
    now: dt.datetime,
    reason_code: int = 0,
    validity: dt.timedelta = DEFAULT_VALIDITY,
) -> PublishedARL:
    """Add `intermediate` to the root's ARL and publish it (None: re-sign the current list).

    Raises:
        RevocationCeremonyError: the root key or certificate does not fit, the
            intermediate was not issued by this root, or the ARL changed meanwhile.
    """
    if root_signer.public_key() != root.public_key():
        raise RevocationCeremonyError("the root key does not match the root certificate")
    if intermediate is not None:
        try:
            intermediate.verify_directly_issued_by(root)
        except Exception as exc:
            raise RevocationCeremonyError("the intermediate was not issued by this root") from exc
    if reason_code not in (0, 1, 2, 3, 4, 5, 9):
        raise RevocationCeremonyError("reason must be one of 0-5 or 9 (RFC 5280 CRLReason for a CA)")
    current = read_arl(blobs, root)
    from shared.validation.crl import CRLBuilder, CRLScope, RevokedEntry  # the ceremony only, not issuance

    entries: list[RevokedEntry] = []
    number = 1
    generation = 0
    if current is not None:
        crl, generation = current
        entries = [(r.serial_number, r.revocation_date_utc, _reason_of(r)) for r in crl]
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    if intermediate is not None:
        if any(serial == intermediate.serial_number for serial, _, _ in entries):
            raise RevocationCeremonyError(f"intermediate {intermediate.serial_number} is already revoked")
        entries.append((intermediate.serial_number, now.replace(microsecond=0), reason_code))
    this_update = now.replace(microsecond=0)
    der = CRLBuilder(certificate=root, signer=root_signer).build(
        entries, number=number, this_update=this_update, next_update=this_update + validity,
        scope=CRLScope(authority=True),
    )
    name = arl_blob_name(root)
    try:
        blobs.write(name, der, content_type=CRL_CONTENT_TYPE, if_generation_match=generation,
                    cache_control="public, max-age=3600, no-transform")
    except PreconditionFailed as exc:
        raise RevocationCeremonyError(f"{name} changed while this ceremony ran; run it again") from exc
    return PublishedARL(name, number, tuple(s for s, _, _ in entries), der)


def _reason_of(entry: x509.RevokedCertificate) -> int:
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return 0
    return {
        x509.ReasonFlags.unspecified: 0, x509.ReasonFlags.key_compromise: 1, x509.ReasonFlags.ca_compromise: 2,
        x509.ReasonFlags.affiliation_changed: 3, x509.ReasonFlags.superseded: 4,
        x509.ReasonFlags.cessation_of_operation: 5, x509.ReasonFlags.privilege_withdrawn: 9,
    }.get(flag, 0)


class RevokedIntermediates:
    """Online view of the roots' ARLs: which intermediates are revoked.

    Read from the blob store at most once per `recheck` (monotonic time), so
    every instance sees a new ARL within that time; a read that fails keeps
    the last good answer (a blob outage must not fail renewals), an ARL that
    does not verify counts as no information and is logged.
    """

    def __init__(self, *, blobs: ARLSource, roots: Sequence[x509.Certificate], recheck: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._blobs = blobs
        self._roots = list(roots)
        self._recheck = recheck
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._revoked: frozenset[tuple[bytes, int]] = frozenset()

    def is_revoked(self, intermediate: x509.Certificate) -> bool:
        """Whether a root's ARL lists `intermediate` (by its issuer name and serial)."""
        key = (intermediate.issuer.public_bytes(), intermediate.serial_number)
        return key in self._current()

    def _current(self) -> frozenset[tuple[bytes, int]]:
        now = self._monotonic()
        with self._lock:
            if self._read_at is not None and now - self._read_at < self._recheck:
                return self._revoked
            self._read_at = now
        revoked: set[tuple[bytes, int]] = set()
        for root in self._roots:
            try:
                found = read_arl(self._blobs, root)
            except (BackendError, OSError) as exc:
                _log.warning("root ARL not readable (%s); keeping the last one", exc)
                return self._revoked
            except RevocationCeremonyError as exc:
                _log.warning("root ARL ignored: %s", exc)
                continue
            if found is not None:
                name = root.subject.public_bytes()
                revoked.update((name, r.serial_number) for r in found[0])
        with self._lock:
            self._revoked = frozenset(revoked)
        return self._revoked
