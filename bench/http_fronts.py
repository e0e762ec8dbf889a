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
  The granian and gunicorn launchers (`serve` below) build the same app
  (`CirrusApp` with the same mounts and the workers' shared ACME nonce
  ledger, created before the workers fork) and run the same background
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
- The hostile checks (`hostile_checks`) run once at the end against all
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
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DURATION = int(os.environ.get("BENCH_DURATION", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
LEVELS = [int(x) for x in os.environ.get("BENCH_LEVELS", "16").split(",")]
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)))
THREADS = int(os.environ.get("BENCH_THREADS", "8"))
ACME_ORDERS = int(os.environ.get("BENCH_ACME_ORDERS", "20"))
GROUP_COMMIT = os.environ.get("BENCH_GROUP_COMMIT", "1") != "0"
SLOW_CLIENTS = int(os.environ.get("BENCH_SLOW_CLIENTS", "40"))
DRIP_FOR = float(os.environ.get("BENCH_DRIP_SECONDS", "45"))
HOSTILE = os.environ.get("BENCH_HOSTILE", "1") != "0"
FRONTS = [f for f in os.environ.get("BENCH_FRONTS", "ours,granian,gunicorn").split(",") if f]


# ------------------------------------------------------------------ the app under a threaded front
class ThreadCommitGroup:
    """Group commit for a thread-per-request front: one commit thread records the writes of concurrent requests.

    The authority hands `add()` its issuance write instead of committing it
    (`shared.groupcommit`'s contract). Here `add()` blocks the request thread
    until the commit thread has recorded its write together with whatever
    other threads queued meanwhile, then publishes the events and returns, or
    raises the error its write met; so the request answers exactly as if it
    had committed alone (nothing is answered before it is recorded).
    """

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self._queue: queue.SimpleQueue[tuple[Any, list[BaseException | None], threading.Event]] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True, name="group-commit").start()

    def add(self, write: Any, publish: Callable[[], None]) -> None:
        outcome: list[BaseException | None] = []
        done = threading.Event()
        self._queue.put((write, outcome, done))
        done.wait()
        if outcome[0] is not None:
            raise outcome[0]
        publish()

    def _run(self) -> None:
        from shared.errors import BackendError, Unavailable

        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes: list[BaseException | None] = list(self._ledger.record_issuances([b[0] for b in batch]))
            except Exception as exc:  # the commit itself: nothing was recorded
                failure: BaseException = (
                    Unavailable("the certificate could not be recorded; retry later")
                    if isinstance(exc, BackendError)
                    else exc
                )
                outcomes = [failure] * len(batch)
            for (_write, outcome, done), result in zip(batch, outcomes, strict=True):
                outcome.append(result)
                done.set()


class LazyApp:
    """The `cirrus up` app, built once per worker process on its first request (after the fork)."""

    def __init__(self, directory: Path, ledger: Any, group_commit: bool) -> None:
        self._directory = directory
        self._ledger = ledger
        self._group_commit = group_commit
        self._lock = threading.Lock()
        self._pid = 0
        self._app: Any = None
        self._group: ThreadCommitGroup | None = None

    def _build(self) -> None:
        from shared.acme.nonce_ledger import NONCE_LEDGER_EXTRA
        from shared.api.app import CirrusApp
        from shared.api.mounts import default_direct_mounts, default_mounts
        from shared.cli.folder import load_settings
        from shared.runtime import build_services
        from shared.store.base import BatchIssuanceLedger

        services = build_services(load_settings(self._directory))
        services.extras[NONCE_LEDGER_EXTRA] = self._ledger
        self._app = CirrusApp(services, mounts=default_mounts(services), direct=default_direct_mounts(services))
        store = services.store
        self._group = (
            ThreadCommitGroup(store) if self._group_commit and isinstance(store, BatchIssuanceLedger) else None
        )
        self._pid = os.getpid()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._build()
        if self._group is not None:
            from shared.api.wsgi import COMMIT_GROUP_KEY

            environ[COMMIT_GROUP_KEY] = self._group
        result: Iterable[bytes] = self._app(environ, start_response)
        return result


def _background(settings: Any) -> int:
    """Fork the process that runs `cirrus up`'s background work (checkpoints, CRLs)."""
    from shared.cli.up import background_tasks

    pid = os.fork()
    if pid:
        return pid
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        background_tasks(stop, settings)
        stop.wait()
    finally:
        os._exit(0)


def serve(front: str, directory: Path, port: int, workers: int, threads: int, group_commit: bool) -> None:
    """Serve the authority in `directory` with granian or gunicorn, as `cirrus up` would."""
    from shared.acme.nonce_ledger import SharedNonceLedger
    from shared.cli.folder import load_settings
    from shared.cli.up import configure_logging
    from shared.runtime import build_services
    from shared.server import issue_server_certificate

    settings = load_settings(directory)
    runtime = Path(tempfile.mkdtemp(prefix="cirrus-front-"))
    probe = build_services(settings)
    try:
        cert, key, _ = issue_server_certificate(probe, runtime)
    finally:
        probe.close()
    configure_logging("INFO")
    app = LazyApp(directory, SharedNonceLedger(workers), group_commit)
    background = _background(settings)
    try:
        if front == "granian":
            from granian import Granian
            from granian.constants import HTTPModes, Interfaces, SSLProtocols
            from granian.http import HTTP1Settings

            Granian(
                "cirrus",
                address="127.0.0.1",
                port=port,
                interface=Interfaces.WSGI,
                http=HTTPModes.http1,
                # Its hardening knobs set as close to ours as they go: the head's deadline
                # (ours: 10 s) and the read buffer (ours: 64 KiB head, then the body).
                http1_settings=HTTP1Settings(header_read_timeout=10_000, max_buffer_size=64 * 1024),
                workers=workers,
                blocking_threads=threads,
                ssl_cert=cert,
                ssl_key=key,
                ssl_protocol_min=SSLProtocols.tls12,
                log_level="warning",
            ).serve(target_loader=lambda _target: app)
        elif front == "gunicorn":
            from gunicorn.app.base import BaseApplication

            class Gunicorn(BaseApplication):  # type: ignore[misc]
                def load_config(self) -> None:
                    for k, v in {
                        "bind": f"127.0.0.1:{port}",
                        "workers": workers,
                        "worker_class": "gthread",
                        "threads": threads,
                        "certfile": str(cert),
                        "keyfile": str(key),
                        "loglevel": "warning",
                    }.items():
                        self.cfg.set(k, v)

                def load(self) -> Any:
                    return app

            Gunicorn().run()
        else:
            raise SystemExit(f"unknown front {front!r}")
    finally:
        os.kill(background, signal.SIGTERM)
        os.waitpid(background, 0)
        shutil.rmtree(runtime, ignore_errors=True)


# ------------------------------------------------------------------ hostile checks (raw sockets over TLS)
# Every hostile request names /nope: the app answers 404 to any method there, so a 404 means the
# front passed the request on, and any other 4xx is the front's own refusal.
SMUGGLING = {
    "cl_te": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_cl": b"POST /nope HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_cl_same": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_cl_differ": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 5\r\n\r\nabcde",
    "cl_list": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
    "obs_fold_space": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n",
    "obs_fold_tab": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n",
    "space_before_colon": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A : v\r\n\r\n",
    "bare_cr_in_value": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
    "nul_in_value": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "two_hosts": b"GET /nope HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}
OVERSIZED = {
    "header_value_100k": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-Big: " + b"x" * 100_000 + b"\r\n\r\n",
    "header_lines_500": b"GET /nope HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 500 + b"\r\n",
    "target_20k": b"GET /nope" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "body_cl_100m": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\n",
}
PASSED_ON = "404"  # the app's answer for /nope
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"


def _tls(port: int, timeout: float) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the checks are about HTTP framing, not the certificate
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def _read_all(c: ssl.SSLSocket, until: float) -> bytes:
    chunks = []
    while time.monotonic() < until:
        try:
            data = c.recv(65536)
        except TimeoutError:
            break
        except (OSError, ssl.SSLError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _statuses(answer: bytes) -> list[str]:
    return [line.split(b" ")[1].decode() for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def framing_check(port: int, raw: bytes, smuggle: bool) -> dict[str, Any]:
    """Send `raw` (plus a second request when `smuggle`); what came back, and was the second one answered?"""
    try:
        with _tls(port, 5) as c:
            c.sendall(raw + (SMUGGLED if smuggle else b""))
            answer = _read_all(c, time.monotonic() + 5)
    except OSError as exc:
        return {"statuses": [], "closed": True, "error": type(exc).__name__}
    statuses = _statuses(answer)
    out: dict[str, Any] = {"statuses": statuses}
    out["refused"] = bool(statuses) and statuses[0].startswith("4") and statuses[0] != PASSED_ON
    if smuggle:
        out["second_request_answered"] = len(statuses) > 1 or b"smuggled" in answer
    return out


def drip_check(port: int, at_once: bytes, dripped: bytes, every: float, give_up: float) -> dict[str, Any]:
    """Send `at_once`, then `dripped` a byte every `every` s: when (if ever, within `give_up` s) is it cut off?"""
    started = time.monotonic()
    try:
        with _tls(port, give_up + 5) as c:
            c.sendall(at_once)
            c.settimeout(every)
            for i in range(len(dripped)):
                if time.monotonic() - started > give_up:
                    return {"cut_off_after_s": None, "held_for_s": round(time.monotonic() - started, 1)}
                try:
                    c.sendall(dripped[i : i + 1])
                except OSError:
                    break
                try:
                    if not c.recv(65536):  # closed, or an answer (408) came back
                        break
                    break
                except (TimeoutError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    break
            else:
                return {"cut_off_after_s": None, "completed": True}
    except OSError:
        pass
    return {"cut_off_after_s": round(time.monotonic() - started, 1)}


def lockout_check(port: int, slow: int, hold: float, body: bool = False) -> dict[str, Any]:
    """Open `slow` connections that drip their heads (or bodies); is a normal client still answered meanwhile?"""
    stop = threading.Event()

    def dripper() -> None:
        with contextlib.suppress(OSError), _tls(port, hold + 10) as c:
            if body:  # a whole head for the real /sign, then its body a byte at a time
                c.sendall(b"POST /1.0/sign HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n")
            else:
                c.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\n")
            while not stop.wait(0.5):
                c.sendall(b"b" if body else b"X-Drip: 1\r\n")

    threads = [threading.Thread(target=dripper, daemon=True) for _ in range(slow)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    started = time.monotonic()
    try:
        with _tls(port, hold) as c:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            answer = _read_all(c, time.monotonic() + hold)
        ok = _statuses(answer)[:1] == ["200"]
    except OSError:
        ok = False
    waited = round(time.monotonic() - started, 2)
    stop.set()
    for t in threads:
        t.join(15)
    return {"slow_connections": slow, "normal_client_served": ok, "waited_s": waited}


def hostile_checks(ports: dict[str, int], drip: float = DRIP_FOR) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {name: {} for name in ports}
    for name, port in ports.items():
        for case, raw in SMUGGLING.items():
            results[name][case] = framing_check(port, raw, smuggle=True)
        for case, raw in OVERSIZED.items():
            results[name][case] = framing_check(port, raw, smuggle=False)
    # The slow cases take up to DRIP_FOR each: all fronts and cases at once.
    slow_cases: dict[str, tuple[bytes, bytes]] = {
        "slow_head": (b"", b"GET /health HTTP/1.1\r\nHost: h\r\nX-Padding: " + b"p" * 400 + b"\r\n\r\n"),
        "slow_body": (b"POST /1.0/sign HTTP/1.1\r\nHost: h\r\nContent-Length: 400\r\n\r\n", b"b" * 400),
    }
    with ThreadPoolExecutor(max_workers=len(ports) * len(slow_cases)) as pool:
        futures = {
            (name, case): pool.submit(drip_check, port, at_once, dripped, 0.2, drip)
            for name, port in ports.items()
            for case, (at_once, dripped) in slow_cases.items()
        }
        for (name, case), fut in futures.items():
            results[name][case] = fut.result()
    for name, port in ports.items():
        results[name]["slow_head_lockout"] = lockout_check(port, SLOW_CLIENTS, 10.0)
        results[name]["slow_body_lockout"] = lockout_check(port, SLOW_CLIENTS, 10.0, body=True)
    return results


def summarize_hostile(checks: dict[str, Any], drip: float = DRIP_FOR) -> dict[str, str]:
    """One word per check: what a reader of the table needs."""
    out: dict[str, str] = {}
    for case in [*SMUGGLING, *OVERSIZED]:
        r = checks[case]
        if r.get("second_request_answered"):
            out[case] = "SMUGGLED: the bytes after it were read as a second request"
        elif r["refused"]:
            out[case] = f"refused {r['statuses'][0]}"
        elif r["statuses"]:
            out[case] = f"PASSED ON to the app ({r['statuses'][0]})" + (", then closed" if case in SMUGGLING else "")
        else:
            out[case] = "no answer within 5 s"
    for case in ("slow_head", "slow_body"):
        cut = checks[case].get("cut_off_after_s")
        out[case] = f"cut off at {cut} s" if cut is not None else f"NOT cut off in {drip:.0f} s"
    for case in ("slow_head_lockout", "slow_body_lockout"):
        lock = checks[case]
        out[case] = (
            f"served in {lock['waited_s']} s beside {lock['slow_connections']} slow"
            if lock["normal_client_served"]
            else f"LOCKED OUT by {lock['slow_connections']} slow connections"
        )
    return out


# ------------------------------------------------------------------ the benchmark
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
        argv = [sys.executable, str(Path(__file__).resolve()), "serve", front, str(ca), str(port),
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
    s = sub.add_parser("serve", help="(internal) serve an authority folder with granian or gunicorn")
    s.add_argument("front", choices=("granian", "gunicorn"))
    s.add_argument("dir", type=Path)
    s.add_argument("port", type=int)
    s.add_argument("--workers", type=int, default=WORKERS)
    s.add_argument("--threads", type=int, default=THREADS)
    s.add_argument("--no-group-commit", action="store_true")
    h = sub.add_parser("hostile", help="only the hostile checks, against fronts started here")
    h.add_argument("--drip", type=float, default=DRIP_FOR)
    args = ap.parse_args()
    if args.command == "serve":
        serve(args.front, args.dir.resolve(), args.port, args.workers, args.threads, not args.no_group_commit)
        return
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
