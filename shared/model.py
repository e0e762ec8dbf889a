"""Frozen value objects shared by the authority, the stores and the API.

These are the records Cirrus keeps. None of them ever holds private key
material: certificates are public, and revocations, endpoints and events only
refer to certificates by serial.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class CertificateKind(enum.StrEnum):
    """What a record holds."""

    X509 = "x509"
    SSH = "ssh"


class ProvisionerType(enum.StrEnum):
    """step-ca's provisioner `type` strings (exact spelling matters on the wire)."""

    JWK = "JWK"
    OIDC = "OIDC"
    GCP = "GCP"
    AWS = "AWS"
    AZURE = "Azure"
    ACME = "ACME"
    X5C = "X5C"
    K8SSA = "K8sSA"
    SSHPOP = "SSHPOP"
    SCEP = "SCEP"
    NEBULA = "Nebula"


@dataclass(frozen=True, slots=True)
class ProvisionerRef:
    """Which provisioner authorised a certificate (stored with every record)."""

    id: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """One issued certificate and its lineage.

    `serial` is the decimal string step-ca uses as key. `renewed_from` is the
    serial of the certificate this one renewed or rekeyed (None for a fresh
    sign). `subject_key` is the normalised subject used for grouping.
    """

    serial: str
    authority_id: str
    kind: CertificateKind
    der: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    provisioner: ProvisionerRef
    endpoint_id: str
    subject_key: str
    common_name: str
    sans: tuple[str, ...]
    issued_at: dt.datetime
    renewed_from: str | None = None
    operation: str = "sign"


@dataclass(frozen=True, slots=True)
class TokenClaim:
    """A single-use key (one-time token `jti` or token hash) to claim atomically with a record."""

    namespace: str
    key: str
    expires_at: dt.datetime


class RevocationReason(enum.IntEnum):
    """RFC 5280 CRLReason codes (certificateHold is never used, BR-06)."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revoked certificate, kept until one CRL after its expiry (CRL-06)."""

    serial: str
    authority_id: str
    revoked_at: dt.datetime
    not_after: dt.datetime
    reason_code: int = 0
    reason: str = ""
    provisioner_id: str = ""
    mtls: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint:
    """The person, device or workload a chain of certificates belongs to."""

    id: str
    authority_id: str
    provisioner_id: str
    subject_key: str
    name: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Event:
    """A lifecycle fact, shaped after CloudEvents 1.0 (id, source, type, time)."""

    id: str
    type: str
    source: str
    subject: str
    time: dt.datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_cloudevent(self) -> dict[str, Any]:
        """Return the structured-mode CloudEvents JSON object."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": dict(self.data),
        }


def subject_key(common_name: str, sans: tuple[str, ...] | list[str]) -> str:
    """Normalise a subject for endpoint grouping.

    Names are compared case-insensitively and order is ignored (DESIGN.md s.1).
    """
    names = {n.strip().lower() for n in [common_name, *sans] if n and n.strip()}
    return "\n".join(sorted(names))
