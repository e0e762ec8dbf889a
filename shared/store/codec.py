"""Record <-> JSON / row encoding shared by every storage backend.

Backends differ in where bytes go, not in what the bytes mean. Keeping the
encoding here means a record written by one backend reads back identically
from another, and every backend rejects the same bad input the same way:

- Datetimes must be timezone-aware. A naive datetime is ambiguous (local time?
  UTC?) and silently storing it would shift certificate validity or token
  expiry by hours, so the store API raises `ValueError` instead. Everything
  comes back as an aware UTC datetime.
- Times are stored either as integer microseconds since the Unix epoch (SQL
  rows: compact, exact, orders numerically) or as a fixed-width ISO string
  `YYYY-MM-DDTHH:MM:SS.ffffffZ` (JSON documents: fixed width makes string order
  equal time order, so a document database can range-query on it).
- JSON payloads (event data, ACME documents) must be plain JSON: no NaN, no
  datetimes, no bytes. Anything else is a programming error and raises
  `ValueError` before it can poison the log.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from shared.model import (
    CertificateKind,
    CertificateRecord,
    Endpoint,
    Event,
    ProvisionerRef,
    Revocation,
    encode_plain_json,
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_ONE_US = dt.timedelta(microseconds=1)

# Document field values longer than this are indexed by digest, so one huge
# string field (a CSR, a JWK) cannot bloat the index; lookups hash the same way.
INDEX_VALUE_MAX = 128


# --------------------------------------------------------------------------- time


def require_aware(value: dt.datetime, what: str = "datetime") -> dt.datetime:
    """Return `value` in UTC, or raise ValueError if it is naive.

    Args:
        value: The datetime handed to the store.
        what: A name for the error message (which argument was wrong).
    """
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} must be timezone-aware (got a naive datetime)")
    return value.astimezone(dt.UTC)


def to_epoch_us(value: dt.datetime, what: str = "datetime") -> int:
    """Encode an aware datetime as integer microseconds since the epoch (exact).

    Aware subtraction already accounts for the offset, so no UTC conversion is made
    (this runs several times per stored certificate).
    """
    tz = value.tzinfo if type(value) is dt.datetime else None
    if tz is not dt.UTC and (tz is None or tz.utcoffset(value) is None):
        require_aware(value, what)  # raises with the precise reason
    return (value - _EPOCH) // _ONE_US


def from_epoch_us(value: int) -> dt.datetime:
    """Decode `to_epoch_us`."""
    return _EPOCH + dt.timedelta(microseconds=value)


def to_iso(value: dt.datetime, what: str = "datetime") -> str:
    """Encode an aware datetime as fixed-width UTC ISO 8601 (string order == time order)."""
    utc = require_aware(value, what)
    if utc.year < 1000:
        raise ValueError(f"{what} is before year 1000 and cannot be encoded with a fixed width")
    return utc.strftime(_ISO_FORMAT)


def from_iso(value: str) -> dt.datetime:
    """Decode `to_iso` (also accepts any ISO 8601 string with an offset)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return require_aware(parsed, "stored time")


# --------------------------------------------------------------------------- JSON

# The one encoder for plain JSON objects (the model's, which event data also uses).
_ENCODE = encode_plain_json
_ENCODE_LIST = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dump_json(data: Mapping[str, Any], what: str = "data") -> str:
    """Serialise a JSON object compactly and deterministically.

    Raises:
        ValueError: `data` is not a mapping of plain JSON values.
    """
    if type(data) is not dict:
        if not isinstance(data, Mapping):
            raise ValueError(f"{what} must be a JSON object")
        data = dict(data)
    try:
        return _ENCODE(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not plain JSON: {exc}") from None


def load_json_object(text: str | bytes) -> dict[str, Any]:
    """Parse a JSON object written by `dump_json`."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored JSON is not an object")
    return value


def copy_json(data: Mapping[str, Any], what: str = "data") -> dict[str, Any]:
    """Deep-copy through JSON, validating it, as a durable store would.

    The memory backend uses this so callers that mutate a dict after storing
    it (or after reading it) see the same isolation a real database gives.
    """
    return load_json_object(dump_json(data, what))


# --------------------------------------------------------------------------- documents


def index_value(value: str) -> str:
    """Return the key under which a document field value is indexed.

    Short values are indexed as themselves; long ones by SHA-256 digest, with a
    prefix no short value starts with in practice. Backends always re-check the
    decoded document, so even a collision could not return a wrong match.
    """
    if len(value) <= INDEX_VALUE_MAX:
        return value
    return "\x00sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def indexable_fields(data: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield `(field, index_value)` for every top-level string field.

    `find_documents` compares a field with a string, so only string-valued
    top-level fields are indexed; a field holding `5` never matches `"5"`.
    """
    for name, value in data.items():
        if isinstance(value, str):
            yield name, index_value(value)


def field_matches(data: Mapping[str, Any], field: str, value: str) -> bool:
    """The exact `find_documents` predicate every backend applies."""
    found = data.get(field)
    return isinstance(found, str) and found == value


# --------------------------------------------------------------------------- issuance


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


# --------------------------------------------------------------------------- records as JSON


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


def endpoint_to_dict(endpoint: Endpoint) -> dict[str, Any]:
    """Encode an endpoint as a JSON-safe dict."""
    return {
        "id": endpoint.id,
        "authority_id": endpoint.authority_id,
        "provisioner_id": endpoint.provisioner_id,
        "subject_key": endpoint.subject_key,
        "name": endpoint.name,
        "created_at": to_iso(endpoint.created_at, "created_at"),
    }


def endpoint_from_dict(data: Mapping[str, Any]) -> Endpoint:
    """Decode `endpoint_to_dict`."""
    return Endpoint(
        id=data["id"],
        authority_id=data["authority_id"],
        provisioner_id=data["provisioner_id"],
        subject_key=data["subject_key"],
        name=data["name"],
        created_at=from_iso(data["created_at"]),
    )


def revocation_to_dict(revocation: Revocation) -> dict[str, Any]:
    """Encode a revocation as a JSON-safe dict."""
    return {
        "serial": revocation.serial,
        "authority_id": revocation.authority_id,
        "revoked_at": to_iso(revocation.revoked_at, "revoked_at"),
        "not_after": to_iso(revocation.not_after, "not_after"),
        "reason_code": int(revocation.reason_code),
        "reason": revocation.reason,
        "provisioner_id": revocation.provisioner_id,
        "mtls": bool(revocation.mtls),
    }


def revocation_from_dict(data: Mapping[str, Any]) -> Revocation:
    """Decode `revocation_to_dict`."""
    return Revocation(
        serial=data["serial"],
        authority_id=data["authority_id"],
        revoked_at=from_iso(data["revoked_at"]),
        not_after=from_iso(data["not_after"]),
        reason_code=int(data.get("reason_code", 0)),
        reason=data.get("reason", ""),
        provisioner_id=data.get("provisioner_id", ""),
        mtls=bool(data.get("mtls", False)),
    )


def event_to_dict(event: Event) -> dict[str, Any]:
    """Encode an event as a JSON-safe dict (its data must be plain JSON)."""
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "time": to_iso(event.time, "event time"),
        "data": copy_json(event.data, f"data of event {event.id!r}"),
    }


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Decode `event_to_dict`."""
    return Event(
        id=data["id"],
        type=data["type"],
        source=data["source"],
        subject=data["subject"],
        time=from_iso(data["time"]),
        data=dict(data.get("data") or {}),
    )


# --------------------------------------------------------------------------- records as SQL rows

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


ENDPOINT_COLUMNS = ("id", "authority_id", "provisioner_id", "subject_key", "name", "created_at")


def endpoint_to_row(endpoint: Endpoint) -> tuple[Any, ...]:
    """Encode an endpoint in `ENDPOINT_COLUMNS` order."""
    return (
        endpoint.id,
        endpoint.authority_id,
        endpoint.provisioner_id,
        endpoint.subject_key,
        endpoint.name,
        to_epoch_us(endpoint.created_at, "created_at"),
    )


def endpoint_from_row(row: tuple[Any, ...]) -> Endpoint:
    """Decode `endpoint_to_row`."""
    return Endpoint(
        id=row[0],
        authority_id=row[1],
        provisioner_id=row[2],
        subject_key=row[3],
        name=row[4],
        created_at=from_epoch_us(row[5]),
    )


REVOCATION_COLUMNS = (
    "serial",
    "authority_id",
    "revoked_at",
    "not_after",
    "reason_code",
    "reason",
    "provisioner_id",
    "mtls",
)


def revocation_to_row(revocation: Revocation) -> tuple[Any, ...]:
    """Encode a revocation in `REVOCATION_COLUMNS` order."""
    return (
        revocation.serial,
        revocation.authority_id,
        to_epoch_us(revocation.revoked_at, "revoked_at"),
        to_epoch_us(revocation.not_after, "not_after"),
        int(revocation.reason_code),
        revocation.reason,
        revocation.provisioner_id,
        1 if revocation.mtls else 0,
    )


def revocation_from_row(row: tuple[Any, ...]) -> Revocation:
    """Decode `revocation_to_row`."""
    return Revocation(
        serial=row[0],
        authority_id=row[1],
        revoked_at=from_epoch_us(row[2]),
        not_after=from_epoch_us(row[3]),
        reason_code=row[4],
        reason=row[5],
        provisioner_id=row[6],
        mtls=bool(row[7]),
    )


EVENT_COLUMNS = ("id", "type", "source", "subject", "time", "data")


def event_data_json(event: Event) -> str:
    """An event's data as `dump_json` writes it (`Event.data_json`: encoded once per event).

    Raises:
        ValueError: the data is not a mapping of plain JSON values.
    """
    what = f"data of event {event.id!r}"
    if not isinstance(event.data, Mapping):
        raise ValueError(f"{what} must be a JSON object")
    try:
        return event.data_json()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not plain JSON: {exc}") from None


def event_to_row(event: Event) -> tuple[Any, ...]:
    """Encode an event in `EVENT_COLUMNS` order (data as JSON text)."""
    return (
        event.id,
        event.type,
        event.source,
        event.subject,
        to_epoch_us(event.time, "event time"),
        event_data_json(event),
    )


def event_from_row(row: tuple[Any, ...]) -> Event:
    """Decode `event_to_row`."""
    return Event(
        id=row[0],
        type=row[1],
        source=row[2],
        subject=row[3],
        time=from_epoch_us(row[4]),
        data=load_json_object(row[5]),
    )
