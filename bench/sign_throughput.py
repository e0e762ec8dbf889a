"""Certificates per second for `POST /1.0/sign` against `cirrus up`, at concurrency 1, 4 and 16.

Method (fixed, so runs compare):
- A fresh authority (`cirrus init`, EC P-256) is served by `cirrus up` (one worker per core).
- Before timing, the script mints one one-time token per request (each token is single-use)
  and builds the request bodies with a single P-256 CSR; nothing is minted while timing.
- The load client is Debian's `wrk` (C, one thread per connection group), replaying the
  pre-built bodies from a file through a small Lua script; each body is sent once.
- Server CPU is read from /proc (utime+stime of the server's processes) before and after each
  level, so the figure per certificate is the server's own cost, not the load client's.
- Each level runs for DURATION seconds; only 201 answers count.
- Both servers log as they would in use: Cirrus at INFO (one access line per request and one
  event line per certificate), step-ca its text request log; both to /dev/null.
- In the same run, when Go and Debian's step-ca 0.19.0 sources are present (golang-go,
  golang-github-smallstep-certificates-dev), step-ca is built and served at the same time on the
  same root, intermediate and provisioner (BENCH_STEP_CA=0 skips it). The two are measured in
  turn, level by level, for ROUNDS rounds: a slow spell of the machine then hits both, and each
  ratio is taken within a round. Printed: per level, the median over rounds of each server's
  figures and of the per-round ratios, and every round's figures.
Prints one JSON object. Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.cli.init import init_authority  # noqa: E402
from tests.helpers import make_csr, mint_token, sign_claims  # noqa: E402

DURATION = int(os.environ.get("BENCH_DURATION", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
LEVELS = [int(x) for x in os.environ.get("BENCH_LEVELS", "1,4,16").split(",")]
PORT = int(os.environ.get("BENCH_PORT", "19443"))
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)))
MAX_RATE = int(os.environ.get("BENCH_MAX_RATE", "5000"))  # bodies minted per second of run

LUA = r"""
local bodies = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format(nil, "/1.0/sign", nil, bodies[i])
end
"""


def server_cpu(pid: int) -> float:
    """utime+stime (seconds) of the server and all its children."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wait_ready(root: Path, port: int) -> None:
    import ssl
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(root))
    for _ in range(100):
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/health", context=ctx, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def run_level(ca: Path, conns: int, pid: int, port: int, workdir: Path) -> dict[str, float]:
    threads = min(conns, 2)
    count = int(MAX_RATE * DURATION) + 1000
    csr, _ = make_csr("bench.example.com")
    workdir.mkdir(parents=True, exist_ok=True)
    bodies = workdir / f"bodies-{conns}.txt"
    with bodies.open("w") as fh:
        for _ in range(count):
            fh.write(
                json.dumps({"csr": csr, "ott": mint_token(ca, sign_claims("bench.example.com", ["bench.example.com"]))})
                + "\n"
            )
    script = workdir / "replay.lua"
    script.write_text(LUA)
    per_thread = [workdir / f"bodies-{conns}-{t}.txt" for t in range(threads)]
    lines = bodies.read_text().splitlines()
    for t, path in enumerate(per_thread):
        path.write_text("\n".join(lines[t::threads]) + "\n")
    cpu0 = server_cpu(pid)
    procs = [
        subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{max(1, conns // threads)}",
                f"-d{int(DURATION)}s",
                "--latency",
                "-s",
                str(script),
                f"https://127.0.0.1:{port}",
                "--",
                str(path),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for path in per_thread
    ]
    outs = [p.communicate()[0] for p in procs]
    if os.environ.get("BENCH_DEBUG"):
        print(outs, file=sys.stderr)
    cpu1 = server_cpu(pid)
    total = non2xx = 0
    for out in outs:
        for line in out.splitlines():
            line = line.strip()
            if "requests in" in line:
                total += int(line.split()[0])
            if line.startswith("Non-2xx"):
                non2xx += int(line.split()[-1])
    ok = total - non2xx
    return {
        "concurrency": conns,
        "certs_per_s": round(ok / DURATION, 1),
        "non_2xx": non2xx,
        "server_cpu_ms_per_cert": round((cpu1 - cpu0) * 1000 / max(ok, 1), 3),
        "bodies_minted": count,
    }


STEP_CA_MAIN = """package main

import (
\t"os"

\t"github.com/smallstep/certificates/commands"
\t"github.com/urfave/cli"
)

func main() {
\tapp := cli.NewApp()
\tapp.Name = "step-ca"
\tapp.Action = commands.AppCommand.Action
\tapp.Flags = commands.AppCommand.Flags
\tif err := app.Run(os.Args); err != nil {
\t\tos.Exit(1)
\t}
}
"""


def build_step_ca(workdir: Path) -> Path | None:
    """step-ca 0.19.0 built from Debian's packaged sources (golang-github-smallstep-certificates-dev), if present."""
    go = shutil.which("go")
    if go is None or not Path("/usr/share/gocode/src/github.com/smallstep/certificates/commands").is_dir():
        return None
    src = workdir / "step-ca-main" / "main.go"
    src.parent.mkdir()
    src.write_text(STEP_CA_MAIN)
    binary = workdir / "step-ca"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{workdir / 'gopath'}:/usr/share/gocode",
        "GOCACHE": os.environ.get("GOCACHE", str(workdir / "gocache")),
    }
    out = subprocess.run([go, "build", "-o", str(binary), str(src)], env=env, capture_output=True, text=True)
    return binary if out.returncode == 0 else None


def step_ca_config(ca: Path, workdir: Path, port: int) -> Path:
    """A ca.json for the same root, intermediate and JWK provisioner (key as plain PEM, bench only)."""
    from cryptography.hazmat.primitives import serialization

    from shared.keys.softkms import SoftKMS

    cfg = json.loads((ca / "config.json").read_text())
    password = (ca / "secrets" / "password").read_bytes().strip()
    key = SoftKMS(password=password).signer(f"softkms:path={ca}/secrets/intermediate_ca_key").builder_key()
    key_path = workdir / "step-int.key"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    step = {
        "root": str(ca / "certs/root_ca.crt"),
        "crt": str(ca / "certs/intermediate_ca.crt"),
        "key": str(key_path),
        "address": f"127.0.0.1:{port}",
        "dnsNames": cfg["dnsNames"],
        "logger": {"format": "text"},
        "db": {"type": "bbolt", "dataSource": str(workdir / "step-db")},
        "authority": {"provisioners": [p for p in cfg["authority"]["provisioners"] if p["type"] == "JWK"]},
        "tls": cfg["tls"],
    }
    path = workdir / "ca.json"
    path.write_text(json.dumps(step))
    return path


def start_server(argv: list[str], ca: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(ca / "certs" / "root_ca.crt", port)
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=20)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summary(rounds: list[dict[str, float]]) -> dict[str, float]:
    """One level's medians over rounds."""
    return {
        "concurrency": rounds[0]["concurrency"],
        "certs_per_s": round(median([r["certs_per_s"] for r in rounds]), 1),
        "non_2xx": sum(int(r["non_2xx"]) for r in rounds),
        "server_cpu_ms_per_cert": round(median([r["server_cpu_ms_per_cert"] for r in rounds]), 3),
    }


def paired_ratio(ours: list[dict[str, float]], theirs: list[dict[str, float]], key: str) -> float | None:
    """The median over rounds of ours / theirs, each ratio taken within one round."""
    ratios = [a[key] / b[key] for a, b in zip(ours, theirs, strict=True) if b[key]]
    return round(median(ratios), 3) if ratios else None


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="cirrus-bench-"))
    ca = workdir / "ca"
    init_authority(ca, p2c=1000)
    out: dict[str, object] = {
        "benchmark": "sign_throughput",
        "duration_s": DURATION,
        "rounds": ROUNDS,
        "cores": os.cpu_count(),
        "workers": WORKERS,
    }
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        cirrus_argv = [
            sys.executable, "-m", "shared.cli", "up", "--dir", str(ca),
            "--address", f"127.0.0.1:{PORT}", "--workers", str(WORKERS),
        ]
        servers["cirrus"] = (start_server(cirrus_argv, ca, PORT), PORT)
        step_ca = build_step_ca(workdir) if os.environ.get("BENCH_STEP_CA", "1") != "0" else None
        if step_ca is not None:
            # step-ca refuses tokens issued before it started: every body is minted after both start.
            port = PORT + 1
            servers["step_ca"] = (start_server([str(step_ca), str(step_ca_config(ca, workdir, port))], ca, port), port)
        runs: dict[str, dict[int, list[dict[str, float]]]] = {name: {c: [] for c in LEVELS} for name in servers}
        for _ in range(ROUNDS):
            for c in LEVELS:
                for name, (server, port) in servers.items():
                    runs[name][c].append(run_level(ca, c, server.pid, port, workdir / name))
        out["results"] = [summary(runs["cirrus"][c]) for c in LEVELS]
        if "step_ca" in runs:
            out["step_ca_0_19_results"] = [summary(runs["step_ca"][c]) for c in LEVELS]
            out["ratio_cirrus_over_step_ca"] = [
                {
                    "concurrency": c,
                    "throughput": paired_ratio(runs["cirrus"][c], runs["step_ca"][c], "certs_per_s"),
                    "server_cpu": paired_ratio(runs["cirrus"][c], runs["step_ca"][c], "server_cpu_ms_per_cert"),
                }
                for c in LEVELS
            ]
        out["per_round"] = {
            name: {str(c): [[r["certs_per_s"], r["server_cpu_ms_per_cert"]] for r in per] for c, per in levels.items()}
            for name, levels in runs.items()
        }
    finally:
        for server, _port in servers.values():
            stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
