"""Fixtures for tests that need Google's emulators (started by `infra/emulators.sh`).

Each fixture reads the emulator's address from the environment variable that
`infra/emulators.sh env` prints. Locally a missing variable skips the test;
under CI=true it fails it, because CI must start every emulator.
"""

from __future__ import annotations

import os

import pytest


def _emulator(variable: str) -> str:
    value = os.environ.get(variable, "")
    if value:
        return value
    message = f"{variable} is not set: run `infra/emulators.sh start` and eval its env"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def firestore_emulator_host() -> str:
    """host:port of the Firestore emulator."""
    return _emulator("FIRESTORE_EMULATOR_HOST")


@pytest.fixture
def pubsub_emulator_host() -> str:
    """host:port of the Pub/Sub emulator."""
    return _emulator("PUBSUB_EMULATOR_HOST")
