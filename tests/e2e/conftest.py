"""Fixtures the end-to-end tests share: the multi-authority deployment (tests/e2e/multi_authority.py)."""

from tests.e2e.multi_authority import _ceremony, deployment  # noqa: F401  (fixtures)
