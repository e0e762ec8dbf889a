"""Firestore factories for the storage contract suite (Google's Firestore emulator).

The emulator's address comes from `FIRESTORE_EMULATOR_HOST`, which
`infra/emulators.sh env` prints and `.ci/run` exports. Each store gets its own
collection prefix, so every test starts empty inside one shared emulator.
Without the variable the Firestore cases skip locally, and fail under CI=true,
where a missing emulator is a broken `.ci/run`, not a reason to test less.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest

from shared.clock import FixedClock
from shared.retry import RetryPolicy
from shared.store.base import Store

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
PROJECT = "cirrus-test"


def emulator_host() -> str:
    """Return FIRESTORE_EMULATOR_HOST; skip (locally) or fail (CI=true) without it."""
    host = os.environ.get("FIRESTORE_EMULATOR_HOST", "")
    if host:
        return host
    message = "FIRESTORE_EMULATOR_HOST is not set: run `infra/emulators.sh start` and eval its env"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def unique_prefix() -> str:
    """A collection prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}_"


def firestore_store(tmp: Path) -> Store:
    """A fresh, empty FirestoreStore on the emulator (the `STORE_FACTORIES` entry)."""
    emulator_host()
    from shared.store.firestore import FirestoreStore

    return FirestoreStore(
        project=PROJECT,
        prefix=unique_prefix(),
        clock=FixedClock(T0),
        # The emulator settles a lock conflict by making the later transaction wait (about 2 s a
        # conflict, measured here), where Firestore wounds the younger one at once: six threads
        # issuing into one new endpoint then take 10-35 s on a loaded machine, which a 30 s
        # deadline sometimes cut short (a 503 for a write that only had to wait its turn).
        retry=RetryPolicy(deadline=90.0),
    )


def firestore_url(tmp: Path) -> str:
    """A URL several processes can open onto the same empty store (`SHARED_STORE_URLS`)."""
    emulator_host()
    return f"firestore:{PROJECT}?prefix={unique_prefix()}"
