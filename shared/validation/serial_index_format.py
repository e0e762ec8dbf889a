"""The published serial index's objects: the manifest, its segments, and their byte format.

Split from `serial_index.py` (the publisher; the reader is `serial_index_reader.py`) so the format can be read on its
own. See that module's docstring for what the index is for and how it is kept.

Manifest fields beyond the segment list and the tail: `retired` lists segments a newer
manifest no longer names, with the time they were dropped; the publisher deletes each once
`retired_grace` has passed (readers holding an older manifest may still fetch it until then).
Readers ignore it, and a manifest without it reads as having none.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.validation.partition import blob_name

SERIAL_BYTES = 20
MANIFEST_CONTENT_TYPE = "application/json"
SEGMENT_CONTENT_TYPE = "application/octet-stream"
_FORMAT = 1


class InvalidIndex(ValueError):
    """A published manifest or segment failed a check and was not loaded."""


# --------------------------------------------------------------------------- encoding


def pack_serials(serials: Iterable[int]) -> bytes:
    """Sorted, de-duplicated, fixed-width big-endian serials."""
    return b"".join(s.to_bytes(SERIAL_BYTES, "big") for s in sorted(set(serials)))


class SortedSerials:
    """A packed segment, searched in place (no per-serial Python objects)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        """Wrap `pack_serials` output; raises InvalidIndex if the size is not a whole number of serials."""
        if len(data) % SERIAL_BYTES:
            raise InvalidIndex("segment size is not a multiple of the serial width")
        self.data = data

    def __len__(self) -> int:
        return len(self.data) // SERIAL_BYTES

    def __getitem__(self, i: int) -> bytes:
        return self.data[i * SERIAL_BYTES : (i + 1) * SERIAL_BYTES]

    def __contains__(self, serial: object) -> bool:
        if not isinstance(serial, int) or serial <= 0 or serial.bit_length() > SERIAL_BYTES * 8:
            return False
        key = serial.to_bytes(SERIAL_BYTES, "big")
        i = bisect.bisect_left(self, key)
        return i < len(self) and self[i] == key

    def __iter__(self) -> Iterator[int]:
        data, width = self.data, SERIAL_BYTES
        return (int.from_bytes(data[i : i + width], "big") for i in range(0, len(data), width))


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise InvalidIndex("a time is not a string")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise InvalidIndex("a time has no offset")
    return parsed.astimezone(dt.UTC)


def _in_index(name: str, prefix: str) -> bool:
    """Is `name` an object of the authority's index (the folder `prefix`, no way out of it)?"""
    return name.startswith(prefix) and ".." not in name


def manifest_name(authority_id: str) -> str:
    """The manifest object of an authority's index."""
    blob_name(authority_id, None)  # same id rules as the CRLs
    return f"ocsp-index/{authority_id}/index.json"


@dataclass(frozen=True, slots=True)
class Segment:
    """A sealed segment as the manifest describes it."""

    name: str
    count: int
    sha256: str
    first_issued: dt.datetime
    last_issued: dt.datetime
    not_after: dt.datetime  # the latest notAfter of its certificates

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "count": self.count,
            "sha256": self.sha256,
            "firstIssued": _iso(self.first_issued),
            "lastIssued": _iso(self.last_issued),
            "notAfter": _iso(self.not_after),
        }

    @classmethod
    def from_json(cls, raw: Any, prefix: str) -> Segment:
        if not isinstance(raw, dict):
            raise InvalidIndex("a segment entry is not an object")
        name, count, digest = raw.get("name"), raw.get("count"), raw.get("sha256")
        if not isinstance(name, str) or not _in_index(name, prefix):
            raise InvalidIndex("a segment name is outside the authority's index")
        if not isinstance(count, int) or count < 0 or not isinstance(digest, str):
            raise InvalidIndex("a segment entry has no count or digest")
        return cls(
            name, count, digest, _time(raw.get("firstIssued")), _time(raw.get("lastIssued")), _time(raw.get("notAfter"))
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """The index of one authority: sealed segments, the inline tail, the cursor."""

    authority_id: str
    segments: tuple[Segment, ...] = ()
    tail: bytes = b""
    tail_first_issued: dt.datetime | None = None
    tail_not_after: dt.datetime | None = None
    cursor_time: dt.datetime | None = None
    cursor_serial: str = ""
    updated: dt.datetime | None = None
    retired: tuple[tuple[str, dt.datetime], ...] = ()  # (segment name, when a manifest stopped naming it)

    @property
    def count(self) -> int:
        """Serials indexed (a serial is in one segment or the tail, never two)."""
        return sum(s.count for s in self.segments) + len(self.tail) // SERIAL_BYTES

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "format": _FORMAT,
            "authorityId": self.authority_id,
            "serialBytes": SERIAL_BYTES,
            "segments": [s.to_json() for s in self.segments],
            "tail": base64.b64encode(self.tail).decode("ascii"),
            "tailFirstIssued": _iso(self.tail_first_issued) if self.tail_first_issued else None,
            "tailNotAfter": _iso(self.tail_not_after) if self.tail_not_after else None,
            "cursor": None
            if self.cursor_time is None
            else {"issuedAt": _iso(self.cursor_time), "serial": self.cursor_serial},
            "updated": _iso(self.updated) if self.updated else None,
            "retired": [{"name": name, "retiredAt": _iso(at)} for name, at in self.retired],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, authority_id: str) -> Manifest:
        """Parse and check a manifest; raises InvalidIndex."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidIndex(f"manifest is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT or doc.get("serialBytes") != SERIAL_BYTES:
            raise InvalidIndex("manifest format is not one this release reads")
        if doc.get("authorityId") != authority_id:
            raise InvalidIndex("manifest belongs to another authority")
        prefix = manifest_name(authority_id).rsplit("/", 1)[0] + "/"
        raw_segments = doc.get("segments")
        if not isinstance(raw_segments, list):
            raise InvalidIndex("manifest has no segment list")
        try:
            tail = base64.b64decode(doc.get("tail") or "", validate=True)
        except (ValueError, TypeError) as exc:
            raise InvalidIndex("manifest tail is not base64") from exc
        if len(tail) % SERIAL_BYTES:
            raise InvalidIndex("manifest tail is not a whole number of serials")
        raw_retired = doc.get("retired") or []
        if not isinstance(raw_retired, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str) and _in_index(r["name"], prefix) for r in raw_retired
        ):
            raise InvalidIndex("manifest retired list is malformed")
        cursor = doc.get("cursor")
        if cursor is not None and (not isinstance(cursor, dict) or not isinstance(cursor.get("serial"), str)):
            raise InvalidIndex("manifest cursor is malformed")
        return cls(
            authority_id=authority_id,
            segments=tuple(Segment.from_json(s, prefix) for s in raw_segments),
            tail=tail,
            tail_first_issued=_time(doc["tailFirstIssued"]) if doc.get("tailFirstIssued") else None,
            tail_not_after=_time(doc["tailNotAfter"]) if doc.get("tailNotAfter") else None,
            cursor_time=_time(cursor["issuedAt"]) if cursor else None,
            cursor_serial=cursor["serial"] if cursor else "",
            updated=_time(doc["updated"]) if doc.get("updated") else None,
            retired=tuple((r["name"], _time(r.get("retiredAt"))) for r in raw_retired),
        )


def verify_segment(segment: Segment, data: bytes) -> SortedSerials:
    """The segment's serials if the bytes are the ones the manifest names; else InvalidIndex."""
    if len(data) != segment.count * SERIAL_BYTES or hashlib.sha256(data).hexdigest() != segment.sha256:
        raise InvalidIndex(f"{segment.name} does not match its manifest entry")
    return SortedSerials(data)
