"""Renewal and rekey: which certificate may be renewed, and what its successor looks like.

step-ca's rules (reference s.3.1-3.3): the presented certificate must be the one this
authority recorded (same DER), not revoked, its provisioner known and renewal not
disabled, already valid, and not expired unless `allowRenewalAfterExpiry`. The
successor keeps the old duration, starts `backdate` ago and copies the extensions,
with the CRL distribution point of its own serial. The authority signs and records it.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.claims import Claims
from shared.errors import Unauthorized
from shared.model import CertificateRecord, ProvisionerRef
from shared.store.base import CertificateReader, RevocationReader
from shared.validity import Window


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
