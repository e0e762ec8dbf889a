"""How Cirrus records are laid out as Firestore documents.

Kept apart from the SDK calls (`firestore.py`) so the layout can be read, and
unit-tested, on its own. Nothing here imports the Firestore SDK.

Layout (every collection name carries the store's prefix `P`):

| collection | document id | what |
|---|---|---|
| `P` + `certificates` | serial | the record, DER as bytes, and the issuance's events |
| `P` + `endpoints` | endpoint id | the endpoint record |
| `P` + `revocations` | serial | the revocation and its events |
| `P` + `events` | event id | events appended on their own (`append_events`) |
| `P` + `claims` | sha256(namespace, key) | one used token or nonce, `expireAt` for TTL |
| `P` + `counters` | name | `value`, incremented by a server-side transform |
| `P` + `endpoint_months` | month, a vertical bar, endpoint id | usage of one endpoint-month (`firestore_usage`) |
| `P` + `collections`/{c}/`P` + `documents` | id | a versioned JSON document, optional `expireAt` |

Events are stored inside the document of the fact they describe, so an
issuance is one certificate write (plus one endpoint write when the endpoint
is new) instead of one write per event. Every document carrying events has
`ev` (the events as JSON text, never indexed), `ev_first` and `ev_last` (the
earliest and latest event time, fixed-width ISO strings that sort as times);
`list_events` merges the three event-carrying collections by those fields.

Certificates, revocations, events and claims also carry `shard`, a digest of
the document id mod N (`firestore_shards`): every index over a time field leads
with it, so no index range rises at the full write rate (docs/scale.md).
The endpoint-month documents need none: no query orders them by time, their
ids are random after the month, and `billable_from`/`billable_to` are not
indexed. The metering query's `(endpoint_id, not_after)` index is bounded to
one endpoint's certificates by its leading equality.

Times inside records use the shared codec's fixed-width ISO strings, so range
queries on them order correctly; only `expireAt` is a Firestore timestamp,
because TTL policies require one.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.model import CertificateRecord, Endpoint, Event, Revocation
from shared.store import codec

CERTIFICATES = "certificates"
ENDPOINTS = "endpoints"
REVOCATIONS = "revocations"
EVENTS = "events"
CLAIMS = "claims"
COUNTERS = "counters"
COLLECTIONS = "collections"
DOCUMENTS = "documents"

# The collections whose documents carry events (see `events_fields`).
EVENT_CARRIERS = (CERTIFICATES, REVOCATIONS, EVENTS)

# Firestore limits a document id to 1,500 bytes; longer keys are hashed.
_MAX_ID_BYTES = 1500
_RESERVED_ID = re.compile(r"^__.*__$")


def doc_id(raw: str) -> str:
    """Map any string to a valid Firestore document id, injectively.

    Firestore forbids `/` in ids, the ids `.` and `..`, and ids of the form
    `__x__`. `~` is the escape character: `~` becomes `~7E` and `/` becomes
    `~2F`; a forbidden or empty id gets the `~00` prefix, and an over-long one
    becomes `~FF` + its SHA-256. Serials, UUIDs and the other ids Cirrus makes
    never contain `~` or `/`, so they are stored as themselves and the
    document order equals the id order.
    """
    escaped = raw.replace("~", "~7E").replace("/", "~2F")
    if escaped in ("", ".", "..") or _RESERVED_ID.match(escaped):
        escaped = "~00" + escaped
    if len(escaped.encode("utf-8")) > _MAX_ID_BYTES:
        escaped = "~FF" + hashlib.sha256(raw.encode("utf-8")).hexdigest()
    return escaped


def claim_id(namespace: str, key: str) -> str:
    """Document id of a claim: a digest, so any namespace and key fit, spread evenly.

    Token ids and nonces are attacker-chosen strings of any length; hashing
    them gives fixed-size ids and avoids the hot-spotting Firestore suffers
    with sequential ids. Namespace and key are length-prefixed so that no two
    different pairs share a digest input.
    """
    ns = namespace.encode("utf-8")
    material = len(ns).to_bytes(4, "big") + ns + key.encode("utf-8")
    return hashlib.sha256(material).hexdigest()


# --------------------------------------------------------------------------- events


def encode_events(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Validate and encode events up front (raises ValueError before any write)."""
    return [codec.event_to_dict(e) for e in events]


def events_fields(encoded: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fields a document carrying `encoded` events gets (none if there are none).

    `ev` is JSON text rather than a Firestore array: event data may hold
    nested arrays, which Firestore cannot store, and it must not be indexed.
    """
    if not encoded:
        return {}
    times = [e["time"] for e in encoded]
    return {
        "ev": codec.dump_json({"events": list(encoded)}, "events"),
        "ev_first": min(times),
        "ev_last": max(times),
    }


def events_from_fields(fields: Mapping[str, Any]) -> list[Event]:
    """Decode the events a document carries."""
    text = fields.get("ev")
    if not text:
        return []
    return [codec.event_from_dict(e) for e in codec.load_json_object(text)["events"]]


# --------------------------------------------------------------------------- records


def certificate_fields(record: CertificateRecord) -> dict[str, Any]:
    """Encode a certificate record (DER as Firestore bytes, a third smaller than base64)."""
    fields = codec.certificate_to_dict(record)
    fields["der"] = bytes(record.der)
    return fields


def certificate_from_fields(fields: Mapping[str, Any]) -> CertificateRecord:
    """Decode `certificate_fields`."""
    data = dict(fields)
    data["der"] = base64.b64encode(bytes(fields["der"])).decode("ascii")
    return codec.certificate_from_dict(data)


def endpoint_fields(endpoint: Endpoint) -> dict[str, Any]:
    """Encode an endpoint."""
    return codec.endpoint_to_dict(endpoint)


def endpoint_from_fields(fields: Mapping[str, Any]) -> Endpoint:
    """Decode `endpoint_fields`."""
    return codec.endpoint_from_dict(fields)


def revocation_fields(revocation: Revocation) -> dict[str, Any]:
    """Encode a revocation."""
    return codec.revocation_to_dict(revocation)


def revocation_from_fields(fields: Mapping[str, Any]) -> Revocation:
    """Decode `revocation_fields`."""
    return codec.revocation_from_dict(fields)


# --------------------------------------------------------------------------- documents


def index_key(field: str) -> str:
    """Key under the `idx` map for a document field.

    The `f` prefix keeps keys valid even for the empty field name or names
    Firestore reserves (`__x__`).
    """
    return "f" + field


def document_fields(data: Mapping[str, Any], version: int, *, expires_at: dt.datetime | None = None) -> dict[str, Any]:
    """Encode a versioned JSON document.

    `data` is kept as JSON text (exact round trip of any JSON, never indexed);
    `idx` maps each top-level string field to its index value so
    `find_documents` is one equality query on a single-field index.
    """
    fields: dict[str, Any] = {
        "data": codec.dump_json(data, "document data"),
        "v": version,
        "idx": {index_key(name): value for name, value in codec.indexable_fields(data)},
    }
    if expires_at is not None:
        fields["expireAt"] = codec.require_aware(expires_at, "expires_at")
    return fields


def document_from_fields(fields: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Decode `document_fields` into `(data, version)`."""
    return codec.load_json_object(fields["data"]), int(fields["v"])


def sort_key(event: Event) -> tuple[str, str]:
    """The order of the event log: time, then id."""
    return codec.to_iso(event.time), event.id


def merge_events(found: Iterable[Event], *, since: dt.datetime | None, limit: int) -> list[Event]:
    """Keep events at or after `since`, first occurrence of each id, in log order."""
    since_key = codec.to_iso(since) if since is not None else ""
    seen: set[str] = set()
    kept: list[Event] = []
    for event in found:
        if event.id in seen or codec.to_iso(event.time) < since_key:
            continue
        seen.add(event.id)
        kept.append(event)
    kept.sort(key=sort_key)
    return kept[:limit]
