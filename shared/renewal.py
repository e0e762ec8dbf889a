"""Renewal and rekey: which certificate may be renewed, and what its successor looks like.

step-ca's rules (reference s.3.1-3.3): the presented certificate must be the one this
authority recorded (same DER), not revoked, its provisioner known and renewal not
disabled, already valid, and not expired unless `allowRenewalAfterExpiry`. The
successor keeps the old duration, starts `backdate` ago and copies the extensions,
with the CRL distribution point of its own serial. `Renewals` signs it (or, in a
registration authority, has the upstream sign it) and hands it to the authority's
recording step; `shared.authority` keeps the public `renew`/`rekey` entry points.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.authority_records import IssuanceRecorder
from shared.claims import Claims
from shared.clock import Clock
from shared.endpoints import endpoint_of_predecessor
from shared.errors import Unauthorized
from shared.groupcommit import CommitGroup
from shared.issued import AuthorityStores, Issued
from shared.keys.base import PublicKey
from shared.leaf_profile import LeafProfile
from shared.model import CertificateRecord, ProvisionerRef
from shared.provisioners.base import ReplayClaim
from shared.store.base import CertificateReader, RevocationReader
from shared.validity import Window
from shared.x509.csr import check_public_key
from shared.x509.profile import Issuer, sign_certificate
from shared.x509.serials import SerialSource

if TYPE_CHECKING:  # a registration authority's path, imported by shared.authority only for one
    from shared.authority_upstream import UpstreamPath


class _Provisioner(Protocol):
    @property
    def ref(self) -> ProvisionerRef: ...

    @property
    def claims(self) -> Claims: ...


class ProvisionerLookup(Protocol):
    """The provisioners by the id stored in certificate records."""

    def by_id(self, ref_id: str) -> _Provisioner | None:
        """The provisioner with this id, if still configured."""
        ...


def renewable_record(
    old: x509.Certificate,
    *,
    authority_id: str,
    certificates: CertificateReader,
    revocations: RevocationReader,
    provisioners: ProvisionerLookup,
    now: dt.datetime,
) -> CertificateRecord:
    """The record of a certificate that may be renewed now.

    Raises:
        Unauthorized: unknown (or another authority's, or other bytes), revoked,
            provisioner gone, renewal disabled, not yet valid, or expired.
    """
    serial = str(old.serial_number)
    record = certificates.get_certificate(serial)
    if (
        record is None
        or record.authority_id != authority_id
        or record.der != old.public_bytes(serialization.Encoding.DER)
    ):
        raise Unauthorized("certificate not found")
    if revocations.get_revocation(serial) is not None:
        raise Unauthorized("certificate has been revoked")
    provisioner = provisioners.by_id(record.provisioner.id)
    if provisioner is None:
        raise Unauthorized("provisioner not found")
    claims = provisioner.claims
    if claims.disable_renewal:
        raise Unauthorized(f"renew is disabled for provisioner '{provisioner.ref.name}'")
    if now < old.not_valid_before_utc:
        raise Unauthorized("certificate is not yet valid")
    if now > old.not_valid_after_utc and not claims.allow_renewal_after_expiry:
        raise Unauthorized(f"certificate expired on {old.not_valid_after_utc.isoformat()}")
    return record


def successor_window(old: x509.Certificate, *, now: dt.datetime, backdate: dt.timedelta) -> Window:
    """The old certificate's duration, starting `backdate` ago."""
    duration = old.not_valid_after_utc - old.not_valid_before_utc
    return Window(not_before=now - backdate, not_after=now - backdate + duration)


def successor_extensions(old: x509.Certificate, crl_url: str | None) -> list[x509.Extension[x509.ExtensionType]]:
    """The old certificate's extensions, with the CRL distribution point of the new serial."""
    extensions = [e for e in old.extensions if not isinstance(e.value, x509.CRLDistributionPoints)]
    if crl_url:
        cdp = x509.CRLDistributionPoints(
            [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
        )
        extensions.append(x509.Extension(cdp.oid, False, cdp))
    return extensions


class Renewals:
    """One authority's renew and rekey: check the presented certificate, issue its successor."""

    def __init__(
        self,
        *,
        authority_id: str,
        issuer: Issuer,
        stores: AuthorityStores,
        provisioners: ProvisionerLookup,
        clock: Clock,
        backdate: dt.timedelta,
        serials: SerialSource,
        profile: LeafProfile,
        may_sign: Callable[[], None],
        issuer_revoked: Callable[[x509.Certificate], bool] | None = None,
        upstream: UpstreamPath | None = None,
        recorder: IssuanceRecorder,
    ) -> None:
        """`may_sign` raises when this authority must not sign now (its intermediate revoked);
        `issuer_revoked` says whether the intermediate that signed a certificate is in its root's ARL."""
        self._authority_id = authority_id
        self._issuer = issuer
        self._stores = stores
        self._provisioners = provisioners
        self._clock = clock
        self._backdate = backdate
        self._serials = serials
        self._profile = profile
        self._may_sign = may_sign
        self._issuer_revoked = issuer_revoked
        self._upstream = upstream
        self._recorder = recorder

    def reissue(
        self,
        old: x509.Certificate,
        new_key: PublicKey | None,
        replay: ReplayClaim | None,
        group: CommitGroup | None,
        csr: x509.CertificateSigningRequest | None,
    ) -> Issued:
        """The successor of `old` (with `new_key` for a rekey), signed and recorded.

        Raises:
            Unauthorized: revoked, unknown, expired, not yet valid, or renewal disabled.
            Unavailable: this authority's intermediate is revoked.
        """
        now = self._clock.now()
        if self._issuer_revoked is not None and self._issuer_revoked(old):
            raise Unauthorized("the certificate's issuing intermediate has been revoked")
        self._may_sign()
        previous = renewable_record(
            old,
            authority_id=self._authority_id,
            certificates=self._stores.issuance,
            revocations=self._stores.revocations,
            provisioners=self._provisioners,
            now=now,
        )
        window = successor_window(old, now=now, backdate=self._backdate)
        new_serial = self._serials()
        if self._upstream is not None:  # an RA forwards a rekey as a fresh sign for the recorded names
            return self._upstream.renew(previous, csr, window, new_key is not None, replay, group, now)
        public_key = new_key if new_key is not None else check_public_key(old.public_key())
        cert = sign_certificate(
            self._issuer,
            subject=old.subject,
            public_key=public_key,
            serial=new_serial,
            not_before=window.not_before,
            not_after=window.not_after,
            extensions=successor_extensions(old, self._profile.crl_for(new_serial)),
        )
        endpoint = endpoint_of_predecessor(previous, authority_id=self._authority_id, now=now)
        op = "rekey" if new_key is not None else "renew"
        return self._recorder.record(
            cert, previous.provisioner, endpoint, now, renewed_from=previous.serial, operation=op,
            new_endpoint=False, claim=replay, group=group,
        )
