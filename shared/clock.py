"""The only reader of the current time.

Tests inject a `FixedClock`; production code receives a `Clock` through its
constructor and never calls `datetime.now()` itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> dt.datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> dt.datetime:
        """Return the current time as an aware UTC datetime."""
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that only moves when told to (for tests)."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at

    def now(self) -> dt.datetime:
        """Return the frozen time."""
        return self._at

    def advance(self, delta: dt.timedelta) -> None:
        """Move the clock forward (or back with a negative delta)."""
        self._at = self._at + delta

    def set(self, at: dt.datetime) -> None:
        """Jump to `at`."""
        self._at = at
