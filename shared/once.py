"""`Once`: a value built on first use, once per instance, thread-safe.

The composition root defers what a function's first request may never need (shared.runtime);
`functools.cached_property` is not used for it because it takes no lock (two threads of an
instance serving concurrent requests would both build) and binds to a class attribute, not a
value handed to several consumers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Once(Generic[T]):
    """A value built by `factory` on first `get()`, once per instance, whichever thread asks first.

    A factory that raises is retried on the next `get()` (nothing half-built is kept).
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory: Callable[[], T] | None = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """The value, built now if this is the first call."""
        factory = self._factory
        if factory is None:
            return self._value  # type: ignore[return-value]
        with self._lock:
            if self._factory is not None:
                self._value = self._factory()
                self._factory = None
        return self._value  # type: ignore[return-value]

    @property
    def built(self) -> bool:
        """Whether `get()` has built the value (tests hold the OCSP path to never building it)."""
        return self._factory is None
