"""ACME-14: newOrder is rate limited per account, shared through the store, with Retry-After."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.acme.problems import ACMEProblem
from shared.acme.ratelimit import check_new_order
from shared.store.memory import MemoryStore

T0 = dt.datetime(2026, 11, 27, 12, 0, 10, tzinfo=dt.UTC)


def test_limit_per_account_and_window() -> None:
    store = MemoryStore()
    for _ in range(3):
        check_new_order(store, account_id="a", limit=3, now=T0)
    with pytest.raises(ACMEProblem) as err:
        check_new_order(store, account_id="a", limit=3, now=T0 + dt.timedelta(seconds=5))
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "46"
    check_new_order(store, account_id="b", limit=3, now=T0)  # another account is unaffected
    check_new_order(store, account_id="a", limit=3, now=T0 + dt.timedelta(minutes=1))  # next window


def test_limit_zero_is_off() -> None:
    store = MemoryStore()
    for _ in range(50):
        check_new_order(store, account_id="a", limit=0, now=T0)
