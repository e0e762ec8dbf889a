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

The encodings live in one module per concern, all re-exported here so every backend
and test keeps writing `codec.NAME`: time values (`codec_time`), JSON payloads and
document-field index keys (`codec_json`), and one module per record type
(`codec_certificates`, `codec_endpoints`, `codec_revocations`, `codec_events`).
"""

from __future__ import annotations

from shared.store.codec_certificates import (
    CERTIFICATE_COLUMNS,
    certificate_from_dict,
    certificate_from_row,
    certificate_to_dict,
    certificate_to_row,
    check_issuance,
)
from shared.store.codec_endpoints import (
    ENDPOINT_COLUMNS,
    endpoint_from_dict,
    endpoint_from_row,
    endpoint_to_dict,
    endpoint_to_row,
)
from shared.store.codec_events import (
    EVENT_COLUMNS,
    event_data_json,
    event_from_dict,
    event_from_row,
    event_to_dict,
    event_to_row,
)
from shared.store.codec_json import (
    INDEX_VALUE_MAX,
    copy_json,
    dump_json,
    field_matches,
    index_value,
    indexable_fields,
    load_json_object,
)
from shared.store.codec_revocations import (
    REVOCATION_COLUMNS,
    revocation_from_dict,
    revocation_from_row,
    revocation_to_dict,
    revocation_to_row,
)
from shared.store.codec_time import from_epoch_us, from_iso, require_aware, to_epoch_us, to_iso

__all__ = [
    "CERTIFICATE_COLUMNS",
    "ENDPOINT_COLUMNS",
    "EVENT_COLUMNS",
    "INDEX_VALUE_MAX",
    "REVOCATION_COLUMNS",
    "certificate_from_dict",
    "certificate_from_row",
    "certificate_to_dict",
    "certificate_to_row",
    "check_issuance",
    "copy_json",
    "dump_json",
    "endpoint_from_dict",
    "endpoint_from_row",
    "endpoint_to_dict",
    "endpoint_to_row",
    "event_data_json",
    "event_from_dict",
    "event_from_row",
    "event_to_dict",
    "event_to_row",
    "field_matches",
    "from_epoch_us",
    "from_iso",
    "index_value",
    "indexable_fields",
    "load_json_object",
    "require_aware",
    "revocation_from_dict",
    "revocation_from_row",
    "revocation_to_dict",
    "revocation_to_row",
    "to_epoch_us",
    "to_iso",
]
