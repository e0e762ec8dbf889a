"""Go duration strings and step-ca's TimeDuration, parsed by hand.

step-ca's JSON carries durations as Go `time.Duration` strings ("24h", "5m",
"1h30m", "-1m") and request validity as TimeDuration (an RFC 3339 time or a
duration relative to now). No well-kept Python library parses Go durations, so
this small parser does; it rejects what Go rejects: a missing or unknown unit
("d"), space, any digit outside ASCII, more than an int64 of nanoseconds. Times
are RFC 3339 as Go's `time.RFC3339` reads them (checked by pattern before
`datetime.fromisoformat`, which alone takes many more ISO 8601 forms).
"""

from __future__ import annotations

import datetime as dt
import re

# Nanoseconds per unit, as Go's `time` package (both micro signs included).
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# ASCII digits only: `\d` would take fullwidth and Arabic-Indic digits (issue 12, item 6).
_PART = re.compile("([0-9]*)(?:\\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_MAX_NS = 1 << 63  # time.Duration is an int64 count of nanoseconds
_MAX_TEXT = 128
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go duration string ("24h", "1h30m", "-5m", "0") exactly as `time.ParseDuration`.

    No surrounding space, ASCII digits, a unit on every part, and the total within
    an int64 count of nanoseconds (about 292 years).

    Raises:
        ValueError: the text is not a Go duration.
    """
    if not isinstance(text, str) or not text or len(text) > _MAX_TEXT:
        raise ValueError("invalid duration")
    s = text
    negative = s[0] == "-"
    if s[0] in "+-":
        s = s[1:]
    if s == "0":
        return dt.timedelta(0)
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos = 0
    total = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or not (m.group(1) or m.group(2)):
            raise ValueError(f"invalid duration {text!r}")
        unit = _UNITS[m.group(3)]
        total += int(m.group(1) or "0") * unit
        frac = m.group(2)
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
        if total > _MAX_NS:
            raise ValueError(f"invalid duration {text!r}: out of range")
        pos = m.end()
    if total == _MAX_NS and not negative:
        raise ValueError(f"invalid duration {text!r}: out of range")
    micros = total // 1000
    return dt.timedelta(microseconds=-micros if negative else micros)


def format_duration(delta: dt.timedelta) -> str:
    """Format like Go's `Duration.String()` for whole seconds ("24h0m0s")."""
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total == 0:
        return "0s"
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def parse_time_duration(value: object, *, now: dt.datetime) -> dt.datetime | dt.timedelta | None:
    """Parse step-ca's TimeDuration: "" or None (unset), RFC 3339, or a Go duration.

    Returns an absolute aware datetime, a relative timedelta, or None.

    Raises:
        ValueError: neither form parses.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("time must be an RFC 3339 string or a duration")
    try:
        return parse_duration(value)
    except ValueError:
        pass
    if len(value) > _MAX_TEXT or not _RFC3339.fullmatch(value):
        raise ValueError(f"invalid time or duration {value[:64]!r}")
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # fromisoformat takes at most 6 fraction digits; Go keeps 9 (nanoseconds)
        digits = rest[:-6]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[-6:]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"invalid time or duration {value[:64]!r}") from exc
    _ = now
    return parsed.astimezone(dt.UTC)
