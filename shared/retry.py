"""Retry with exponential backoff under one deadline.

Cloud backends fail transiently (a Firestore instance restarting, a storage
request timing out). A request handler must neither give up on the first such
blip nor hang until the function's own timeout kills it: it retries with
growing pauses until a deadline, then answers 503 (`shared.errors.Unavailable`)
so the client retries later. Only errors a backend marked as transient
(`BackendError(transient=True)`) are retried; anything else is a definite
answer and propagates at once.

Backends wrap each durable operation in `RetryPolicy.call`. Time and sleep are
injectable so tests run without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from shared.errors import BackendError, Unavailable

T = TypeVar("T")


class Attempt:
    """What an operation may know about its retry budget.

    Passed to the retried callable so it can bound each SDK call by the time
    left (`timeout()`) and know whether an earlier attempt may have been
    applied without the answer reaching us (`number > 1`).
    """

    def __init__(self, number: int, deadline: float, clock: Callable[[], float], cap: float):
        self.number = number
        self._deadline = deadline
        self._clock = clock
        self._cap = cap

    def timeout(self) -> float:
        """Seconds this attempt's SDK call may take: the time left, at most the per-call cap."""
        return max(0.001, min(self._cap, self._deadline - self._clock()))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often to retry a transient backend failure.

    Attributes:
        deadline: Seconds from the first attempt after which no new attempt
            starts; the caller then gets `Unavailable`.
        initial_delay: Pause before the second attempt.
        max_delay: Upper bound of one pause.
        multiplier: Growth of the pause per attempt.
        jitter: Fraction of each pause that is randomised, so many instances
            failing together do not retry in lockstep (0 disables it).
        attempt_timeout: Upper bound for one SDK call, so a hung connection
            cannot eat the whole deadline.
        sleep: Injected `time.sleep`.
        clock: Injected monotonic clock.
        rand: Injected random source in [0, 1).
    """

    deadline: float = 10.0
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.2
    attempt_timeout: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.deadline <= 0 or self.attempt_timeout <= 0:
            raise ValueError("deadline and attempt_timeout must be positive")
        if self.initial_delay < 0 or self.max_delay < self.initial_delay or self.multiplier < 1:
            raise ValueError("delays must satisfy 0 <= initial_delay <= max_delay, multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")

    def call(self, operation: Callable[[Attempt], T], *, what: str = "backend call") -> T:
        """Run `operation` until it succeeds, fails for good, or the deadline passes.

        Args:
            operation: The work; receives the current `Attempt`. It raises
                `BackendError(transient=True)` for failures worth retrying.
            what: A short name for log and error messages (never shown to clients).

        Returns:
            Whatever `operation` returns.

        Raises:
            Unavailable: The operation kept failing transiently until the deadline.
            BackendError: A non-transient backend failure (propagated unchanged).
        """
        start = self.clock()
        deadline = start + self.deadline
        delay = self.initial_delay
        number = 1
        while True:
            try:
                return operation(Attempt(number, deadline, self.clock, self.attempt_timeout))
            except BackendError as exc:
                if not exc.transient:
                    raise
                pause = delay * (1 - self.jitter * self.rand())
                if self.clock() + pause >= deadline:
                    # The client sees only Unavailable's safe default detail; the
                    # cause chain (with this note) is for the structured log.
                    exc.add_note(f"{what}: gave up after {number} attempt(s) in {self.clock() - start:.2f}s")
                    raise Unavailable() from exc
            self.sleep(pause)
            delay = min(self.max_delay, delay * self.multiplier)
            number += 1
