"""Frozen value objects shared by the authority, the stores and the API.

These are the records Cirrus keeps. None of them ever holds private key
material: certificates are public, and revocations, endpoints and events only
refer to certificates by serial.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
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


# Plain JSON as the stores keep it and the sinks send it: compact, sorted keys, no NaN, UTF-8
# as is (`shared.store.codec.dump_json` and `Event.data_json`). One encoder for every call:
# `json.dumps` with options builds a new one each time.
encode_plain_json = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, allow_nan=False, ensure_ascii=False
).encode
_STR_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class Event:
    """A lifecycle fact, shaped after CloudEvents 1.0 (id, source, type, time).

    A fact does not change: `data` must not be modified once the event is made, because
    its JSON is encoded once (`data_json`) and shared by the store and the sinks.
    """

    id: str
    type: str
    source: str
    subject: str
    time: dt.datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    _data_json: str | None = field(default=None, init=False, repr=False, compare=False)

    def data_json(self) -> str:
        """`data` as compact JSON with sorted keys, encoded on first use and kept.

        Why kept: a certificate's events are encoded for the store's row and again for
        the log or Pub/Sub line, about 5 us each time.

        Raises:
            ValueError, TypeError: `data` is not plain JSON (NaN, datetimes, bytes...).
        """
        text = self._data_json
        if text is None:
            data = self.data if type(self.data) is dict else dict(self.data)
            text = encode_plain_json(data)
            object.__setattr__(self, "_data_json", text)  # a cache of a frozen value, not a change
        return text

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

    def to_cloudevent_json(self) -> str:
        """`to_cloudevent()` as compact JSON text, with `data` from `data_json()`.

        Raises:
            ValueError, TypeError: `data` is not plain JSON.
        """
        return (
            f'{{"specversion":"1.0","id":{_STR_ENCODE(self.id)},"source":{_STR_ENCODE(self.source)},'
            f'"type":{_STR_ENCODE(self.type)},"subject":{_STR_ENCODE(self.subject)},'
            f'"time":"{self.time.isoformat().replace("+00:00", "Z")}",'
            f'"datacontenttype":"application/json","data":{self.data_json()}}}'
        )


def subject_key(common_name: str, sans: tuple[str, ...] | list[str]) -> str:
    """Normalise a subject for endpoint grouping.

    Names are compared case-insensitively and order is ignored (DESIGN.md s.1).
    """
    names = {n.strip().lower() for n in [common_name, *sans] if n and n.strip()}
    return "\n".join(sorted(names))
