"""Time values as the store encodes them: aware UTC datetimes, as epoch microseconds or fixed-width ISO text.

Split from `shared.store.codec` (which re-exports all of it) so the time rules read in one
place. A naive datetime is ambiguous (local time? UTC?) and silently storing it would shift
certificate validity or token expiry by hours, so every encoder raises `ValueError` for one;
everything comes back as an aware UTC datetime. SQL rows store integer microseconds since
the Unix epoch (compact, exact, orders numerically); JSON documents store
`YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed width, so string order equals time order and a
document database can range-query on it).
"""

from __future__ import annotations

import datetime as dt

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_ONE_US = dt.timedelta(microseconds=1)


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
