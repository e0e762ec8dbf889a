"""Go duration strings and step-ca's TimeDuration, parsed by hand.

step-ca's JSON carries durations as Go `time.Duration` strings ("24h", "5m",
"1h30m", "-1m") and request validity as TimeDuration (an RFC 3339 time or a
duration relative to now). No well-kept Python library parses Go durations, so
this small parser does; it rejects everything Go rejects that matters to us
(missing unit, unknown unit, "d").
"""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go duration string ("24h", "1h30m", "-5m", "0").

    Raises:
        ValueError: the text is not a Go duration.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return dt.timedelta(0)
    pos = 0
    seconds = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r}")
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return dt.timedelta(seconds=sign * seconds)


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
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"invalid time or duration {value!r}") from exc
    if parsed.tzinfo is None:
        raise ValueError("time must carry a UTC offset")
    _ = now
    return parsed.astimezone(dt.UTC)
