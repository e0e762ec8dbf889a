"""A validation's total deadline (issue 12 item 13).

Per-operation socket timeouts alone let a target that sends one byte every
few seconds hold a validation for as long as it likes (every read succeeds
within its timeout). Every validator therefore carries one `Deadline` for the
whole validation, every redirect hop, lookup, connect, handshake and read
included, and each blocking step waits at most what is left of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared.acme.config import ACMEProvisionerConfig
from shared.acme.problems import ACMEProblem


@dataclass(frozen=True, slots=True)
class Deadline:
    """`at` (time.monotonic) is when the validation must have finished; `per_step` caps one blocking step."""

    at: float
    per_step: float

    @classmethod
    def start(cls, config: ACMEProvisionerConfig) -> Deadline:
        """The deadline of a validation starting now under `config`."""
        return cls(time.monotonic() + config.validation_deadline, config.validation_timeout)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def timeout(self) -> float:
        """The timeout for the next blocking step; a `connection` problem once the deadline has passed."""
        left = self.remaining()
        if left <= 0:
            raise self.problem()
        return min(self.per_step, left)

    def problem(self, kind: str = "connection") -> ACMEProblem:
        """What a validation that ran out of time reports."""
        return ACMEProblem(kind, "the validation did not complete within its deadline")
