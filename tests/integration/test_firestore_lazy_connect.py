"""FirestoreStore connects on its first operation, once, however many threads make it at once.

Opening the store is free (no SDK import, no client, no channel), so a function that opens the
store but never reads it does not pay for the SDK at its cold start
(tests/functions/test_cold_imports.py). A new instance's first requests arrive together, though:
they must share one client, and every one of them must succeed.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import uuid

import pytest
from firestore_grpc import PROJECT

from shared.retry import RetryPolicy
from shared.store.firestore import FirestoreStore

pytestmark = pytest.mark.firestore

EXPIRES = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


def test_opening_and_closing_an_unused_store_loads_no_sdk() -> None:
    code = (
        "import sys\n"
        "from shared.store.firestore import from_url\n"
        "from shared.clock import SystemClock\n"
        "s = from_url('firestore:projects/p/databases/d?prefix=x_', clock=SystemClock())\n"
        "s.close()\n"
        "bad = [m for m in sys.modules if m.startswith(('google.cloud.firestore', 'google.api_core', 'grpc'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_concurrent_first_operations_share_one_client(firestore_emulator_host: str) -> None:
    store = FirestoreStore(project=PROJECT, prefix=f"lazy{uuid.uuid4().hex[:8]}_", retry=RetryPolicy(deadline=30))
    start = threading.Barrier(8)
    results: list[bool] = []
    clients: list[object] = []
    errors: list[BaseException] = []

    def first_request(i: int) -> None:
        try:
            start.wait()
            results.append(store.claim("jti", f"token-{i}", EXPIRES))
            clients.append(store._client)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=first_request, args=(i,)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert results == [True] * 8  # eight different tokens: each claim is its own
        assert len({id(c) for c in clients}) == 1
        assert store.claim("jti", "token-0", EXPIRES) is False  # and they were really written
    finally:
        store.close()
