"""Soak `cirrus up` with many complete ACME orders, sequential and concurrent, to catch stalls.

Why: one run of bench/acme_orders.py ended with the client's
`TimeoutError: The read operation timed out`. A stall that shows once in
hundreds of orders needs many orders, several clients at once (so offloaded
challenge POSTs overlap other requests on the same worker) and a short client
timeout (so a stall is reported as one, naming the request, instead of
hanging the run for the library's 45 s default).

Method: a fresh `cirrus init` authority under `cirrus up` (same configuration as
bench/acme_orders.py); `--clients` threads, each with its own account and
keep-alive connection, run `--orders` complete orders each (new order,
http-01, finalize, download). Every request has a `--timeout` second client
timeout. Output: one JSON object with orders done, failures by step and error,
and the slowest request seen.

Run: python bench/acme_soak.py [--orders 300] [--clients 4] [--timeout 10] [--store sqlite|memory]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from acme_orders import CirrusProcess, Driver  # noqa: E402

from tests.unit.acme.acme_support import ChallTestSrv, HTTP01Responder  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--orders", type=int, default=300, help="orders per client")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=10.0, help="client read timeout, seconds")
    ap.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    failures: collections.Counter[str] = collections.Counter()
    slowest: list[tuple[float, str]] = [(0.0, "")]
    done = [0]
    lock = threading.Lock()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        dns, responder = ChallTestSrv(), HTTP01Responder()
        cirrus = CirrusProcess(Path(tmp), dns, responder.port, args.store)
        try:

            def client(idx: int) -> None:
                drv = Driver(cirrus.directory, cirrus.bundle, responder, timeout=args.timeout)
                for i in range(args.orders):
                    try:
                        drv.order(f"s{i}.c{idx}.soak.test")
                        with lock:
                            done[0] += 1
                    except Exception as exc:  # every failure is counted, none stops the soak
                        with lock:
                            failures[f"{drv.step}: {type(exc).__name__}: {str(exc)[:120]}"] += 1
                    with lock:
                        if drv.slowest[0] > slowest[0][0]:
                            slowest[0] = drv.slowest

            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            cirrus.close()
            responder.close()
            dns.close()
    result: dict[str, Any] = {
        "benchmark": "acme_soak",
        "store": args.store,
        "clients": args.clients,
        "orders_ok": done[0],
        "orders_failed": sum(failures.values()),
        "failures": dict(failures),
        "slowest_request_s": round(slowest[0][0], 3),
        "slowest_request": slowest[0][1],
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
