"""Child-process bodies for the multi-process store tests.

They live in their own module (not the test module) so a `spawn`ed child can
import them without importing pytest fixtures. Each child opens the store from
its URL, waits at the barrier so both children race, and reports its results.
"""

from __future__ import annotations

import datetime as dt
import functools
import traceback
from collections.abc import Callable
from typing import Any

from shared.clock import SystemClock
from shared.store.open import open_store

EXPIRES = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def _reporting(body: Callable[..., None]) -> Callable[..., None]:
    """Send a child's failure to the parent as its result, so the test shows the child's traceback.

    (A child that only dies shows up as a bare exit code, or as the parent's queue timeout.)
    """

    @functools.wraps(body)
    def run(*args: Any) -> None:
        results = args[-1]
        try:
            body(*args)
        except BaseException:
            results.put({"child_error": traceback.format_exc()})
            raise

    return run


@_reporting
def claim_keys(url: str, keys: list[str], barrier: Any, results: Any) -> None:
    """Claim every key; report the ones this process won."""
    store = open_store(url, clock=SystemClock())
    try:
        barrier.wait(timeout=60)
        won = [k for k in keys if store.claim("jti", k, EXPIRES)]
        results.put(won)
    finally:
        store.close()


@_reporting
def count(url: str, n: int, barrier: Any, results: Any) -> None:
    """Take `n` counter values; report them in the order received."""
    store = open_store(url, clock=SystemClock())
    try:
        barrier.wait(timeout=60)
        results.put([store.next_value("crl") for _ in range(n)])
    finally:
        store.close()
