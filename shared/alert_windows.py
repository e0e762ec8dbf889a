"""When a certificate counts as "expiring": the alert windows the settings carry.

Apart from shared.alerts (the sweep's alert run) so that reading the settings, which
every Cloud Function does on its first request, does not import the alert run, the
event and store protocols and `cryptography.x509` with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.model import CertificateRecord

#: How far ahead the expiring scan looks unless configured (covers third-of-lifetime windows
#: of certificates up to 90 days).
DEFAULT_HORIZON = dt.timedelta(days=30)


@dataclass(frozen=True, slots=True)
class AlertWindows:
    """When a certificate is "expiring": per provisioner, else the authority's, else a third of its life."""

    default: dt.timedelta | None = None
    by_provisioner: Mapping[str, dt.timedelta] = field(default_factory=dict)
    horizon: dt.timedelta = DEFAULT_HORIZON

    def window_for(self, record: CertificateRecord) -> dt.timedelta:
        """The alert window of one certificate."""
        window = self.by_provisioner.get(record.provisioner.name) or self.default
        if window is not None:
            return window
        return (record.not_after - record.not_before) / 3

    def scan_horizon(self) -> dt.timedelta:
        """How far ahead to look: the horizon, and at least every explicit window."""
        explicit = [w for w in (self.default, *self.by_provisioner.values()) if w is not None]
        return max([self.horizon, *explicit])
