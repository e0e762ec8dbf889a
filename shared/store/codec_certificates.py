"""Certificate records as JSON documents (Firestore) and as SQL rows (SQLite, memory).

Split from `shared.store.codec` (which re-exports all of it) by record type. Also holds
`check_issuance`, the one rule about an issuance as a whole that every backend applies
before it writes anything.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef
from shared.store.codec_time import from_epoch_us, from_iso, to_epoch_us, to_iso

# SANs are stored as a compact JSON list.
_ENCODE_LIST = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def check_issuance(certificate: CertificateRecord, new_endpoint: Endpoint | None) -> None:
    """Reject an issuance whose new endpoint is not the certificate's endpoint.

    Creating endpoint B while attaching the certificate to A would leave an
    endpoint with no certificates (billable, never expiring); that is a bug in
    the caller, so every backend refuses it before writing anything.
    """
    if new_endpoint is not None and new_endpoint.id != certificate.endpoint_id:
        raise ValueError(
            f"new endpoint {new_endpoint.id!r} is not the certificate's endpoint "
            f"{certificate.endpoint_id!r}"
        )


def certificate_to_dict(record: CertificateRecord) -> dict[str, Any]:
    """Encode a certificate record as a JSON-safe dict (DER in base64)."""
    return {
        "serial": record.serial,
        "authority_id": record.authority_id,
        "kind": str(record.kind),
        "der": base64.b64encode(record.der).decode("ascii"),
        "not_before": to_iso(record.not_before, "not_before"),
        "not_after": to_iso(record.not_after, "not_after"),
        "provisioner": {
            "id": record.provisioner.id,
            "name": record.provisioner.name,
            "type": record.provisioner.type,
        },
        "endpoint_id": record.endpoint_id,
        "subject_key": record.subject_key,
        "common_name": record.common_name,
        "sans": list(record.sans),
        "issued_at": to_iso(record.issued_at, "issued_at"),
        "renewed_from": record.renewed_from,
        "operation": record.operation,
    }


def certificate_from_dict(data: Mapping[str, Any]) -> CertificateRecord:
    """Decode `certificate_to_dict`."""
    prov = data["provisioner"]
    return CertificateRecord(
        serial=data["serial"],
        authority_id=data["authority_id"],
        kind=CertificateKind(data["kind"]),
        der=base64.b64decode(data["der"]),
        not_before=from_iso(data["not_before"]),
        not_after=from_iso(data["not_after"]),
        provisioner=ProvisionerRef(id=prov["id"], name=prov["name"], type=prov["type"]),
        endpoint_id=data["endpoint_id"],
        subject_key=data["subject_key"],
        common_name=data["common_name"],
        sans=tuple(data["sans"]),
        issued_at=from_iso(data["issued_at"]),
        renewed_from=data.get("renewed_from"),
        operation=data.get("operation", "sign"),
    )


CERTIFICATE_COLUMNS = (
    "serial",
    "authority_id",
    "kind",
    "der",
    "not_before",
    "not_after",
    "provisioner_id",
    "provisioner_name",
    "provisioner_type",
    "endpoint_id",
    "subject_key",
    "common_name",
    "sans",
    "issued_at",
    "renewed_from",
    "operation",
)


def certificate_to_row(record: CertificateRecord) -> tuple[Any, ...]:
    """Encode a certificate in `CERTIFICATE_COLUMNS` order (DER as bytes for a BLOB)."""
    return (
        record.serial,
        record.authority_id,
        str(record.kind),
        bytes(record.der),
        to_epoch_us(record.not_before, "not_before"),
        to_epoch_us(record.not_after, "not_after"),
        record.provisioner.id,
        record.provisioner.name,
        record.provisioner.type,
        record.endpoint_id,
        record.subject_key,
        record.common_name,
        _ENCODE_LIST(list(record.sans)),
        to_epoch_us(record.issued_at, "issued_at"),
        record.renewed_from,
        record.operation,
    )


def certificate_from_row(row: tuple[Any, ...]) -> CertificateRecord:
    """Decode `certificate_to_row`."""
    return CertificateRecord(
        serial=row[0],
        authority_id=row[1],
        kind=CertificateKind(row[2]),
        der=bytes(row[3]),
        not_before=from_epoch_us(row[4]),
        not_after=from_epoch_us(row[5]),
        provisioner=ProvisionerRef(id=row[6], name=row[7], type=row[8]),
        endpoint_id=row[9],
        subject_key=row[10],
        common_name=row[11],
        sans=tuple(json.loads(row[12])),
        issued_at=from_epoch_us(row[13]),
        renewed_from=row[14],
        operation=row[15],
    )
