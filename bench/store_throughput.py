"""Storage throughput: claims and issuance records per second, per backend.

Method (fixed so runs compare):
- Each measurement opens a fresh store (SQLite: a new file in a temporary
  directory, default settings: WAL, synchronous=NORMAL) and runs 200 warm-up
  operations that are not timed.
- `claim`: N single-use claims of distinct keys in one namespace.
- `record_issuance`: N issuances shaped like one `/sign`: a certificate record
  with an 800-byte DER, a new endpoint, and one event.
- `record_issuance_2proc` (SQLite only): two spawned processes each record N/2
  issuances into the same file at once; ops/s is N over the wall time from the
  moment both are released, which shows cross-process lock contention.
- Times are wall-clock (`time.perf_counter`) on one thread; ops/s = N / seconds.

Run: `python bench/store_throughput.py [--n 20000] [--out result.json]`.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.clock import SystemClock
from shared.model import CertificateKind, CertificateRecord, Endpoint, Event, ProvisionerRef
from shared.store.base import Store
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
PROV = ProvisionerRef(id="prov-1", name="bench", type="JWK")
DER = bytes(range(256)) * 3 + bytes(32)  # 800 bytes
WARMUP = 200


def _issuance(i: int, prefix: str) -> tuple[CertificateRecord, Endpoint, Event]:
    serial = f"{prefix}{i:012d}"
    endpoint_id = f"ep-{prefix}{i}"
    name = f"host-{i}.example.com"
    issued = T0 + dt.timedelta(microseconds=i)
    record = CertificateRecord(
        serial=serial,
        authority_id="auth-1",
        kind=CertificateKind.X509,
        der=DER,
        not_before=issued,
        not_after=issued + dt.timedelta(hours=24),
        provisioner=PROV,
        endpoint_id=endpoint_id,
        subject_key=name,
        common_name=name,
        sans=(name,),
        issued_at=issued,
    )
    endpoint = Endpoint(
        id=endpoint_id,
        authority_id="auth-1",
        provisioner_id=PROV.id,
        subject_key=name,
        name=name,
        created_at=issued,
    )
    event = Event(
        id=f"ev-{serial}",
        type="dev.cirrus.certificate.issued",
        source="cirrus-ca",
        subject=serial,
        time=issued,
        data={"serial": serial, "endpoint": endpoint_id},
    )
    return record, endpoint, event


def _rate(n: int, op: Callable[[int], object]) -> float:
    for i in range(WARMUP):
        op(-1 - i)
    start = time.perf_counter()
    for i in range(n):
        op(i)
    return n / (time.perf_counter() - start)


def _claim_rate(store: Store, n: int) -> float:
    expires = T0 + dt.timedelta(days=1)
    return _rate(n, lambda i: store.claim("jti", f"key-{i}", expires))


def _issuance_rate(store: Store, n: int, prefix: str = "") -> float:
    def op(i: int) -> None:
        record, endpoint, event = _issuance(i, prefix + ("w" if i < 0 else ""))
        store.record_issuance(record, new_endpoint=endpoint, events=[event])

    return _rate(n, op)


def _issue_worker(path: str, n: int, prefix: str, barrier: Any, queue: Any) -> None:
    store = SQLiteStore(path, clock=SystemClock())
    batch = [_issuance(i, prefix) for i in range(n)]
    barrier.wait()
    for record, endpoint, event in batch:
        store.record_issuance(record, new_endpoint=endpoint, events=[event])
    queue.put(time.perf_counter())
    store.close()


def _two_process_rate(path: str, n: int) -> float:
    SQLiteStore(path).close()  # create the schema before the race
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_issue_worker, args=(path, n // 2, f"p{k}-", barrier, queue))
        for k in range(2)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    end: float = max(queue.get(timeout=600) for _ in procs)
    for p in procs:
        p.join()
    return (n // 2 * 2) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="timed operations per measurement")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    n: int = args.n

    results: dict[str, Any] = {
        "benchmark": "store_throughput",
        "n": n,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "ops_per_second": {},
    }
    rates: dict[str, dict[str, float]] = results["ops_per_second"]

    memory = MemoryStore()
    rates["memory"] = {
        "claim": round(_claim_rate(memory, n)),
        "record_issuance": round(_issuance_rate(memory, n)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        claim_store = SQLiteStore(Path(tmp) / "claim.db")
        issue_store = SQLiteStore(Path(tmp) / "issue.db")
        rates["sqlite"] = {
            "claim": round(_claim_rate(claim_store, n)),
            "record_issuance": round(_issuance_rate(issue_store, n)),
            "record_issuance_2proc": round(_two_process_rate(str(Path(tmp) / "two.db"), n)),
        }
        claim_store.close()
        issue_store.close()

    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
