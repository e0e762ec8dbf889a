"""The HTTP front of `cirrus up`: our server (`shared.httpserver`) vs granian (WSGI) and gunicorn (gthread).

The question (issue 18, item 5): does a well-kept server carry the same app at
90 % or more of our c=16 `/sign` throughput, and does it refuse what ours
refuses (request smuggling, slow clients, oversized heads)?

Method (fixed, so runs compare):
- One fresh authority (`cirrus init`, EC P-256, ACME provisioner set up for
  loopback http-01), copied once per front, so each front has the same keys
  and provisioners and a store of its own (embedded SQLite, WAL).
- Three servers run at once, each with the same number of worker processes
  (`BENCH_WORKERS`, default one per core, as `cirrus up`), HTTPS with a
  server certificate from the CA's own intermediate, logging at INFO to
  /dev/null as `cirrus up` does:
  - ours: `cirrus up` as shipped (event loop per worker, group commit per loop turn);
  - granian: `--interface wsgi`, `BENCH_THREADS` blocking threads per worker;
  - gunicorn: `-k gthread`, `BENCH_THREADS` threads per worker.
  The granian and gunicorn launcher (`bench/front_launch.py`) builds the same app
  (`CirrusApp` with the same mounts and the workers' shared ACME nonce
  ledger, created before the workers fork) and runs the same background
  process (WAL checkpoints, CRL schedule) beside the workers. Requests
  there run on threads, so the loop-turn group commit has nothing to hook
  into; with `BENCH_GROUP_COMMIT=1` (default) each worker runs a commit
  thread instead (`ThreadCommitGroup`): a request thread's issuance write
  waits in a queue, the commit thread records everything queued in one
  transaction, then the request goes on (answer, events) as if it had
  committed alone. With `BENCH_GROUP_COMMIT=0` each request commits on its own.
- `/sign` at c=16 (and any other `BENCH_LEVELS`): `bench/sign_throughput.py`'s
  `run_level` (wrk replaying pre-minted one-time tokens, server CPU from /proc),
  `BENCH_DURATION` seconds per front per round.
- ACME: `bench/acme_orders.py`'s client (certbot's `acme` library), one
  reused account per front, `BENCH_ACME_ORDERS` complete orders (new order,
  http-01, finalize, download) per front per round, sequentially.
- `BENCH_ROUNDS` rounds; in each the fronts take turns (the order rotates per
  round), so a noisy moment of the shared machine hits all of them; ratios to
  ours are taken within a round and their median is reported.
- The hostile checks (`bench/http_hostile.py`) run once at the end against all
  three, over TLS on raw sockets: the smuggling heads of
  tests/unit/core/test_http_front.py, oversized heads, slow clients
  (dripping head / body bytes: when is the connection cut?), and whether
  `BENCH_SLOW_CLIENTS` dripping connections lock out a normal client
  (`BENCH_HOSTILE=0` skips them; `python bench/http_fronts.py hostile` runs only them).
Prints one JSON object.

Run: python bench/http_fronts.py
Needs: apt-get install wrk pebble; pip install granian gunicorn certbot (gunicorn also comes with
functions-framework; neither server is a dependency of Cirrus itself, only of this comparison).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from http_hostile import DRIP_FOR, hostile_checks, summarize_hostile  # noqa: E402

DURATION = int(os.environ.get("BENCH_DURATION", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
LEVELS = [int(x) for x in os.environ.get("BENCH_LEVELS", "16").split(",")]
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
ACME_ORDERS = int(os.environ.get("BENCH_ACME_ORDERS", "20"))
GROUP_COMMIT = os.environ.get("BENCH_GROUP_COMMIT", "1") != "0"
HOSTILE = os.environ.get("BENCH_HOSTILE", "1") != "0"
FRONTS = [f for f in os.environ.get("BENCH_FRONTS", "ours,granian,gunicorn").split(",") if f]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def make_authority(work: Path, dns_resolver: str, http_port: int) -> Path:
    from shared.cli.init import init_authority

    ca = work / "ca"
    init_authority(ca, p2c=1000)
    cfg = json.loads((ca / "config.json").read_text())
    for p in cfg["authority"]["provisioners"]:
        if p["type"] == "ACME":
            p["cirrus"] = {
                "allowLoopback": True,
                "http01Port": http_port,
                "dnsResolver": dns_resolver,
                "ordersPerMinute": 0,
                "validationTimeout": 5,
            }
    (ca / "config.json").write_text(json.dumps(cfg))
    return ca


def start_front(front: str, ca: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if front == "ours":
        argv = [sys.executable, "-m", "shared.cli", "up", "--dir", str(ca), "--address", f"127.0.0.1:{port}",
                "--workers", str(WORKERS)]
    else:
        argv = [sys.executable, str(Path(__file__).resolve().with_name("front_launch.py")), front, str(ca), str(port),
                "--workers", str(WORKERS), "--threads", str(THREADS)]
        if not GROUP_COMMIT:
            argv.append("--no-group-commit")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from sign_throughput import wait_ready

    try:
        wait_ready(ca / "certs" / "root_ca.crt", port)
    except BaseException:
        proc.terminate()
        raise
    return proc


def acme_rate(driver: Any, prefix: str, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        driver.order(f"o{i}.{prefix}.bench.test")
    return n / (time.perf_counter() - started)


@contextlib.contextmanager
def fronts_running(work: Path, ca: Path) -> Iterator[dict[str, tuple[subprocess.Popen[bytes], int, Path]]]:
    running: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = {}
    try:
        for front in FRONTS:
            copy = work / f"ca-{front}"
            shutil.copytree(ca, copy)
            port = free_port()
            running[front] = (start_front(front, copy, port), port, copy)
        yield running
    finally:
        for proc, _port, _dir in running.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _port, _dir in running.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_times() -> tuple[float, float]:
    """(all, idle) jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def sched_times(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a server, its children and all their threads."""
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ran = waited = 0.0
    for p in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    run_ns, wait_ns, _ = (int(x) for x in (task / "schedstat").read_text().split())
                    ran += run_ns / 1e9
                    waited += wait_ns / 1e9
    return ran, waited


def measured_level(ca: Path, conns: int, pid: int, port: int, workdir: Path) -> dict[str, float]:
    """`run_level`, plus how much CPU the server got and how idle the machine was meanwhile.

    On this shared machine a front's throughput is also its share of contended cores: the
    kernel shares CPU per thread, and a front with more runnable threads gets more of it.
    `server_cores` (certificates/s x CPU per certificate) shows that share, and
    `server_ran_pct_of_runnable` how much of the time its threads were ready to run they
    actually ran; with the cores to itself a front would reach about cores / CPU per certificate.
    """
    from sign_throughput import run_level

    total0, idle0 = cpu_times()
    ran0, waited0 = sched_times(pid)
    result = run_level(ca, conns, pid, port, workdir)
    ran1, waited1 = sched_times(pid)
    total1, idle1 = cpu_times()
    # Of the time the server's threads wanted a CPU, the part they got it (the rest: others ran).
    result["server_ran_pct_of_runnable"] = round(100 * (ran1 - ran0) / max(ran1 - ran0 + waited1 - waited0, 1e-9), 1)
    result["server_cores"] = round(result["certs_per_s"] * result["server_cpu_ms_per_cert"] / 1000, 2)
    result["machine_idle_pct"] = round(100 * (idle1 - idle0) / max(total1 - total0, 1), 1)
    return result


Rounds = dict[str, dict[int, list[dict[str, float]]]]  # front -> level -> one result per round


def table_row(name: str, sign: Rounds, acme: dict[str, list[float]]) -> dict[str, Any]:
    """One front's medians over rounds, and its ratios to ours taken within each round."""
    row: dict[str, Any] = {"front": name}
    for c in LEVELS:
        rounds = sign[name][c]
        row[f"c{c}_certs_per_s"] = round(median([x["certs_per_s"] for x in rounds]), 1)
        row[f"c{c}_server_cpu_ms_per_cert"] = round(median([x["server_cpu_ms_per_cert"] for x in rounds]), 3)
        row[f"c{c}_non_2xx"] = sum(int(x["non_2xx"]) for x in rounds)
        row[f"c{c}_server_cores"] = round(median([x["server_cores"] for x in rounds]), 2)
        row[f"c{c}_machine_idle_pct"] = round(median([x["machine_idle_pct"] for x in rounds]), 1)
        row[f"c{c}_server_ran_pct_of_runnable"] = round(median([x["server_ran_pct_of_runnable"] for x in rounds]), 1)
        # cores / server CPU per certificate: the ceiling with the machine to itself (the load client ignored)
        row[f"c{c}_cpu_bound_certs_per_s"] = round(
            median([1000 * (os.cpu_count() or 1) / x["server_cpu_ms_per_cert"] for x in rounds]), 0
        )
        if "ours" in sign:
            pairs = zip(rounds, sign["ours"][c], strict=True)
            row[f"c{c}_ratio_to_ours"] = round(median([x["certs_per_s"] / o["certs_per_s"] for x, o in pairs]), 3)
            pairs = zip(rounds, sign["ours"][c], strict=True)
            row[f"c{c}_cpu_per_cert_ratio_to_ours"] = round(
                median([x["server_cpu_ms_per_cert"] / o["server_cpu_ms_per_cert"] for x, o in pairs]), 3
            )
    row["acme_orders_per_s"] = round(median(acme[name]), 2)
    if "ours" in acme:
        row["acme_ratio_to_ours"] = round(median([a / o for a, o in zip(acme[name], acme["ours"], strict=True)]), 3)
    return row


def bench() -> dict[str, Any]:
    from acme_orders import Driver

    from tests.unit.acme.acme_support import ChallTestSrv, HTTP01Responder

    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    out: dict[str, Any] = {
        "benchmark": "http_fronts",
        "cores": os.cpu_count(),
        "workers": WORKERS,
        "threads_per_worker": THREADS,
        "thread_group_commit": GROUP_COMMIT,
        "duration_s": DURATION,
        "rounds": ROUNDS,
        "acme_orders_per_round": ACME_ORDERS,
    }
    work = Path(tempfile.mkdtemp(prefix="cirrus-fronts-"))
    dns = ChallTestSrv()
    responder = HTTP01Responder()
    try:
        ca = make_authority(work, dns.resolver, responder.port)
        with fronts_running(work, ca) as running:
            drivers = {
                name: Driver(f"https://127.0.0.1:{port}/acme/acme/directory", d / "certs" / "root_ca.crt", responder)
                for name, (_p, port, d) in running.items()
            }
            for name, drv in drivers.items():  # warm-up: each worker's first order pays its imports
                for i in range(4):
                    drv.order(f"w{i}.{name}.bench.test")
            sign: Rounds = {n: {c: [] for c in LEVELS} for n in running}
            acme: dict[str, list[float]] = {n: [] for n in running}
            names = list(running)
            for r in range(ROUNDS):
                order = names[r % len(names):] + names[: r % len(names)]
                for c in LEVELS:
                    for name in order:
                        proc, port, _d = running[name]
                        sign[name][c].append(measured_level(ca, c, proc.pid, port, work / f"wrk-{name}"))
                for name in order:
                    acme[name].append(acme_rate(drivers[name], f"r{r}.{name}", ACME_ORDERS))
                progress = {
                    "round": r,
                    "sign": {n: [x[-1]["certs_per_s"] for x in sign[n].values()] for n in names},
                    "acme": {n: round(acme[n][-1], 2) for n in names},
                }
                print(json.dumps(progress), file=sys.stderr, flush=True)
            table = [table_row(name, sign, acme) for name in names]
            out["results"] = table
            out["per_round"] = {
                name: {"sign": {str(c): [[x["certs_per_s"], x["server_cpu_ms_per_cert"], x["server_cores"]]
                                         for x in sign[name][c]] for c in LEVELS},
                       "acme": [round(a, 2) for a in acme[name]]}
                for name in names
            }
            if HOSTILE:
                checks = hostile_checks({name: port for name, (_p, port, _d) in running.items()})
                out["hostile"] = {name: summarize_hostile(c) for name, c in checks.items()}
                out["hostile_detail"] = checks
    finally:
        responder.close()
        dns.close()
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = ap.add_subparsers(dest="command")
    h = sub.add_parser("hostile", help="only the hostile checks, against fronts started here")
    h.add_argument("--drip", type=float, default=DRIP_FOR)
    args = ap.parse_args()
    if args.command == "hostile":
        from tests.unit.acme.acme_support import ChallTestSrv, HTTP01Responder

        work = Path(tempfile.mkdtemp(prefix="cirrus-fronts-"))
        dns, responder = ChallTestSrv(), HTTP01Responder()
        try:
            with fronts_running(work, make_authority(work, dns.resolver, responder.port)) as running:
                checks = hostile_checks({name: port for name, (_p, port, _d) in running.items()}, args.drip)
            print(json.dumps({"benchmark": "http_fronts_hostile",
                              "hostile": {n: summarize_hostile(c, args.drip) for n, c in checks.items()},
                              "hostile_detail": checks}, indent=2))
        finally:
            responder.close()
            dns.close()
            shutil.rmtree(work, ignore_errors=True)
        return
    print(json.dumps(bench(), indent=2))


if __name__ == "__main__":
    main()
