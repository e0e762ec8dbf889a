"""Plain JSON payloads (event data, ACME documents) and the document-field index keys.

Split from `shared.store.codec` (which re-exports all of it). A payload must be plain JSON:
no NaN, no datetimes, no bytes. Anything else is a programming error and raises `ValueError`
before it can poison the log. `find_documents` matches a top-level string field exactly, and
every backend applies the same predicate (`field_matches`) and index key (`index_value`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from shared.model import encode_plain_json

# Document field values longer than this are indexed by digest, so one huge
# string field (a CSR, a JWK) cannot bloat the index; lookups hash the same way.
INDEX_VALUE_MAX = 128

# The one encoder for plain JSON objects (the model's, which event data also uses).
_ENCODE = encode_plain_json


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
