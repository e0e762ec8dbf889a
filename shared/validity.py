"""Certificate validity windows from requests and claims (step-ca semantics).

Without a requested `notBefore` the window starts `backdate` (one minute) in
the past, so clients with slightly slow clocks accept the certificate; the
default duration counts from now, and the maximum allows for the backdate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.durations import parse_time_duration
from shared.errors import BadRequest, Forbidden


@dataclass(frozen=True, slots=True)
class Window:
    """A validity window."""

    not_before: dt.datetime
    not_after: dt.datetime


def requested_window(
    *,
    not_before: object,
    not_after: object,
    now: dt.datetime,
    default: dt.timedelta,
    backdate: dt.timedelta,
) -> Window:
    """Resolve requested TimeDurations into absolute times.

    Raises:
        BadRequest: a value does not parse, or lands outside the calendar.
    """
    try:
        nb = parse_time_duration(not_before, now=now)
        na = parse_time_duration(not_after, now=now)
    except ValueError as exc:
        raise BadRequest(f"invalid validity: {exc}") from exc
    try:
        if isinstance(nb, dt.timedelta):
            nb = now + nb
        base = nb if nb is not None else now
        if isinstance(na, dt.timedelta):
            na = base + na
    except OverflowError as exc:  # a duration that leaves the calendar (before year 1 or after 9999)
        raise BadRequest("invalid validity: the requested time is out of range") from exc
    start = nb if nb is not None else now - backdate
    end = na if na is not None else base + default
    return Window(not_before=start.replace(microsecond=0), not_after=end.replace(microsecond=0))


def check_window(
    window: Window,
    *,
    now: dt.datetime,
    minimum: dt.timedelta,
    maximum: dt.timedelta,
    backdate: dt.timedelta,
) -> None:
    """Enforce the provisioner's bounds.

    Raises:
        Forbidden: the window is in the past, inverted, too short or too long.
    """
    if window.not_after <= now:
        raise Forbidden("notAfter cannot be in the past")
    if window.not_after < window.not_before:
        raise Forbidden("notAfter cannot be before notBefore")
    duration = window.not_after - window.not_before
    if duration < minimum:
        raise Forbidden(f"requested duration of {duration} is less than the authorized minimum {minimum}")
    if duration > maximum + backdate:
        raise Forbidden(f"requested duration of {duration} is more than the authorized maximum {maximum}")
