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

CPU per operation (`cpu_us_per_op`, the figure that matters inside `cirrus up`, where the
store shares the core with TLS, JWS and signing):
- Thread CPU time (`time.thread_time`) of the calling thread per operation, minimum and
  median of `--rounds` rounds of `--cpu-n` operations, each round on a fresh file after warm-up.
- `record_issuance`: shaped like one `/sign`: a token claim, a new endpoint, the certificate
  (800-byte DER) and two events, in one call.
- `claim`: one ACME nonce / token claim.
- `doc_create`, `doc_get`, `doc_update`, `doc_find`: an ACME-order-shaped document (six
  top-level strings, lists, nulls) created, read, changed (status) and found by `accountId`.
- The current store runs as `cirrus up` runs it under load: a background thread calls
  `checkpoint()` every 1/4 s (its CPU is reported separately, per operation, as
  `checkpoint_thread_us_per_op`; in `cirrus up` it runs in the master process).
- `--baseline REV` also measures the store as of git revision REV: REV's `shared/` tree is
  extracted (`git archive`) into a temporary directory and each round runs in a subprocess
  (this file in `--worker-round` mode) with PYTHONPATH at that tree, so every store module
  (the split codec and role modules included) comes from REV. Current rounds run the same way
  with PYTHONPATH at this checkout, alternating with the baseline's, so the two are compared
  on one noisy machine in one run. A store with a `checkpoint()` (both, since it exists) runs
  it in the background thread; each worker reports the files its `shared` modules came from.

Run: `python bench/store_throughput.py [--n 20000] [--cpu-n 3000] [--rounds 3]
[--baseline 4b7995f] [--skip-throughput] [--out result.json]`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import io
import json
import multiprocessing
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shared.clock import SystemClock
from shared.model import CertificateKind, CertificateRecord, Endpoint, Event, ProvisionerRef, TokenClaim
from shared.store.base import Store
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
PROV = ProvisionerRef(id="prov-1", name="bench", type="JWK")
DER = bytes(range(256)) * 3 + bytes(32)  # 800 bytes
WARMUP = 200
# As `cirrus up` checkpoints while the WAL is long (under load): see shared/cli/up.py.
CHECKPOINT_SECONDS = 0.25


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


ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def baseline_tree(rev: str, root: Path = ROOT) -> Iterator[Path]:
    """A temporary directory holding `shared/` as of git revision `rev` (removed afterwards).

    `git archive` rather than `git worktree add`: nothing is registered in the repository, so an
    interrupted run leaves no stale worktree behind.
    """
    with tempfile.TemporaryDirectory(prefix="store-baseline-") as tmp:
        done = subprocess.run(["git", "archive", "--format=tar", rev, "shared"], cwd=root, capture_output=True)
        if done.returncode != 0:
            raise SystemExit(f"store_throughput: no revision {rev!r} with a shared/ tree in {root}")
        archive = done.stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def run_worker(tree: Path, *args: str) -> dict[str, Any]:
    """Run this file's worker mode with `shared` imported from `tree`; its JSON answer."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], cwd=tree, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"store_throughput: the worker on {tree} failed: {last}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _loaded_shared_modules() -> dict[str, str]:
    """Every loaded `shared` module and its file (what a worker ran)."""
    return {name: str(getattr(m, "__file__", "")) for name, m in sorted(sys.modules.items())
            if name == "shared" or name.startswith("shared.")}  # fmt: skip


def _worker(args: argparse.Namespace) -> None:
    """`--worker-where`: the modules only; `--worker-round N`: one CPU round of N operations too."""
    import shared.store.sqlite

    out: dict[str, Any] = {}
    if args.worker_round:
        store_class = shared.store.sqlite.SQLiteStore
        out["round"] = _cpu_round(store_class, args.worker_round, hasattr(store_class, "checkpoint"))
    if args.worker_mark:  # tests: whether the named module carries a mark only the baseline tree has
        out["mark"] = bool(getattr(importlib.import_module(args.worker_mark), "BASELINE_MARK", False))
    out["modules"] = _loaded_shared_modules()
    print(json.dumps(out))


def _order(i: int) -> dict[str, Any]:
    return {
        "provisioner": "acme",
        "accountId": f"acc-{i}",
        "status": "pending",
        "expires": "2025-01-08T00:00:00Z",
        "identifiers": [{"type": "dns", "value": f"host-{i}.example.com"}],
        "authzIds": [f"authz-{i}-a"],
        "notBefore": None,
        "notAfter": None,
        "replaces": None,
        "replacesId": None,
        "certificateId": None,
        "error": None,
        "createdAt": "2025-01-01T00:00:00Z",
    }


def _cpu_round(factory: Callable[[Path], Any], n: int, checkpointing: bool) -> dict[str, float]:
    """Thread CPU microseconds per operation, for each operation kind, on a fresh file."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = factory(Path(tmp) / "cpu.db")
        stop = threading.Event()
        spent = [0.0]

        def checkpointer() -> None:
            while not stop.wait(CHECKPOINT_SECONDS):
                t = time.thread_time()
                store.checkpoint()
                spent[0] += time.thread_time() - t

        thread = threading.Thread(target=checkpointer, daemon=True) if checkpointing else None
        if thread is not None:
            thread.start()
        expires = T0 + dt.timedelta(days=1)

        def timed(name: str, op: Callable[[int], object], count: int, warm: int = WARMUP) -> None:
            for i in range(warm):
                op(-1 - i)
            start = time.thread_time()
            for i in range(count):
                op(i)
            out[name] = round(1e6 * (time.thread_time() - start) / count, 1)

        def issue(i: int) -> None:
            record, endpoint, event = _issuance(i, "w" if i < 0 else "")
            second = Event(
                id=event.id + "-2", type="dev.cirrus.endpoint.created", source=event.source,
                subject=endpoint.id, time=event.time, data={"endpoint": endpoint.id},
            )
            claim = TokenClaim(namespace="jti", key=f"jti-{record.serial}", expires_at=expires)
            store.record_issuance(record, new_endpoint=endpoint, events=[event, second], claim=claim)

        timed("record_issuance", issue, n)
        timed("claim", lambda i: store.claim("nonce", f"n-{i}", expires), n)
        timed("doc_create", lambda i: store.create_document("acme_orders", f"o-{i}", _order(i), expires_at=expires), n)
        timed("doc_get", lambda i: store.get_document("acme_orders", f"o-{i}"), n)
        timed(
            "doc_update",
            lambda i: store.update_document(
                "acme_orders", f"o-{i}", {**_order(i), "status": "ready"}, expected_version=1
            ),
            n,
        )
        timed("doc_find", lambda i: store.find_documents("acme_orders", "accountId", f"acc-{i}"), n)
        stop.set()
        if thread is not None:
            thread.join()
            out["checkpoint_thread_us_per_op"] = round(1e6 * spent[0] / (6 * n + 6 * WARMUP), 2)
        store.close()
    return out


def _cpu_comparison(n: int, rounds: int, baseline_rev: str | None) -> dict[str, Any]:
    """Median per-op CPU of the current store and, if given, the baseline, alternating rounds."""
    with contextlib.ExitStack() as stack:
        trees = {"current": ROOT}
        if baseline_rev:
            trees = {"baseline": stack.enter_context(baseline_tree(baseline_rev)), **trees}
        samples: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
        modules: dict[str, str] = {}
        for _ in range(rounds):
            for name, tree in trees.items():
                answer = run_worker(tree, "--worker-round", str(n))
                samples[name].append(answer["round"])
                modules[name] = answer["modules"].get("shared.store.sqlite", "")
    # The machine is shared and noisy: the minimum over rounds is the steadiest estimate of
    # the intrinsic cost; the median is shown beside it.
    result: dict[str, Any] = {
        f"{name}_{stat.__name__}": {op: stat(r[op] for r in rs) for op in rs[0]}
        for name, rs in samples.items()
        for stat in (min, statistics.median)
    }
    result["store_module"] = modules
    if baseline_rev:
        result["baseline_rev"] = baseline_rev
        for stat in ("min", "median"):
            result[f"current_over_baseline_{stat}"] = {
                op: round(result[f"current_{stat}"][op] / result[f"baseline_{stat}"][op], 3)
                for op in result[f"baseline_{stat}"]
                if op in result[f"current_{stat}"] and result[f"baseline_{stat}"][op] > 0
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="timed operations per measurement")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--cpu-n", type=int, default=3000, help="operations per CPU round")
    parser.add_argument("--rounds", type=int, default=3, help="CPU rounds per store (median reported)")
    parser.add_argument("--baseline", help="git revision whose SQLite store to compare against")
    parser.add_argument("--skip-throughput", action="store_true", help="only the CPU comparison")
    parser.add_argument("--worker-round", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker-where", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-mark", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_round or args.worker_where:
        _worker(args)
        return
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
    results["cpu_us_per_op"] = _cpu_comparison(args.cpu_n, args.rounds, args.baseline)
    if args.skip_throughput:
        del results["ops_per_second"]
        text = json.dumps(results, indent=2)
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
        return

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
