"""Sub-applications mounted beside the step-ca API (validation authority, ACME).

Each mount is imported only when the app is built, so a function that serves
only the step-ca API never imports the ACME server.
"""

from __future__ import annotations

from shared.api.app import Mount
from shared.runtime import Services


def default_mounts(services: Services) -> dict[str, Mount]:
    """Every mount the single-process server serves."""
    return {}
