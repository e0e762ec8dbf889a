"""Cold start of each Cloud Function: new Python process -> first answered request, and import cost.

What a cold instance pays, measured on this machine for every entry point of `functions/main.py`
(ca_api, acme, ocsp, crl_publish, sweep, and any that land later):

- `first_answer_ms`: wall time from spawning `python -m functions_framework --target NAME` (the server
  Cloud Functions 2nd gen runs: gunicorn, one worker) to the end of its first successful request.
  The first request is real work: ca_api answers a `POST /1.0/sign` with a fresh JWK one-time token
  and CSR (so it verifies the token, claims its `jti`, signs and records a certificate), ocsp a DER
  `POST /ocsp` for an issued certificate (it reads the published CRL), acme `GET /health`; event
  functions: a Pub/Sub CloudEvent POST (binary mode, as Eventarc delivers it). The client polls the
  port every 2 ms, so the figure includes how long the server takes to listen. Split into
  `listen_ms` (process start, imports, gunicorn fork, socket bound) and `first_request_ms` (the first
  request itself: building the instance's services from settings, lazy imports, the work).
- `cpu_ms`: CPU time (user + system) the server process and its worker used, from spawn to shutdown
  after the first answer (shutdown adds a few ms). Wall time on a machine shared with other work
  swings by tens of percent from one run to the next; CPU time moves far less, so it is the figure
  to compare trees by there (the Firestore emulator's own work is not in it).
- `module_import_ms`: `python -X importtime -c "import functions.main"`, cumulative time of that
  import (what every function pays before it can serve), and `first_call_import_ms`: the imports the
  function's first request triggers lazily (same tool, counted after a marker).
- `first_call_modules`: how many modules the first request imports lazily (same run). A count, not a
  time: it does not swing with the machine's load, so it shows a trimmed import where the times
  cannot.
- `python_startup_ms`: `python -c pass`, the floor no function can go under.
- `floors`: the same spawn-to-first-answer for two functions that are not ours, so the target can be
  read against what no code of ours can change: `framework` answers `GET /` with "ok" (Python, the
  Functions Framework and gunicorn: what every Python function pays), and, in the emulators shape,
  `framework_google_sdks` whose first request imports the Firestore and Cloud Storage SDKs and
  makes one read through each (what a function that touches both services pays before any work).
  `budget_left_ms` is the target less the framework floor.

Storage is the embedded shape (SQLite store and local blob folder inside an authority made by
`cirrus init`), so the figures are the code's own cost, not an emulator's latency. Each figure is the
median of `--repeat` runs (default 5), taken round-robin across the functions so
load from elsewhere on the machine spreads evenly; min and max are given too. `--shape emulators`
measures the same against the Firestore emulator and fake-gcs-server instead (FIRESTORE_EMULATOR_HOST
and STORAGE_EMULATOR_HOST from `infra/emulators.sh env`): the first request then also pays the Cloud SDK
imports and the first RPCs, which a deployed function pays against the real services.

`--baseline DIR` names a second checkout (for example a `git worktree` of main): every repetition then
runs each function from both trees back to back, alternating which goes first, against the same
fixture, and the output gives each tree's figures and `ratio` (this tree's median over the
baseline's). On a machine shared with other work, only figures taken this way compare fairly.

Usage: python bench/cold_start.py [--repeat 5] [--shape local|emulators|both] [--functions ca_api,ocsp]
       [--baseline ../main-checkout] > result.json
"""

from __future__ import annotations

import argparse
import ast
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "functions" / "main.py"
TARGET_MS = 350.0
_SIGNATURES = {"http": "http", "cloud_event": "cloudevent"}
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
_SUBJECT = "bench.example.com"


def entry_points(main: Path = MAIN) -> dict[str, str]:
    """Entry points of functions/main.py and their signature types (parsed, not imported)."""
    out: dict[str, str] = {}
    for node in ast.parse(main.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if name in _SIGNATURES:
                    out[node.name] = _SIGNATURES[name]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


# ------------------------------------------------------------------ fixture
@dataclass
class Fixture:
    """What the first requests need: the authority, an OCSP request, and the means to mint `/sign` bodies."""

    ca: Path
    ocsp_der: bytes
    jwk: dict[str, Any]
    csr_pem: str

    def sign_body(self) -> bytes:
        """A `/1.0/sign` body with a fresh one-time token (each is redeemable once)."""
        from shared.cli.client import mint_token

        token = mint_token(jwk=self.jwk, provisioner="admin", subject=_SUBJECT,
                           audience="https://127.0.0.1/1.0/sign", sans=[_SUBJECT])  # fmt: skip
        return json.dumps({"csr": self.csr_pem, "ott": token}).encode()


def prepare(workdir: Path, overrides: dict[str, str]) -> Fixture:
    """An authority with one issued certificate and a published CRL, and the OCSP request for it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp
    from cryptography.x509.oid import NameOID
    from werkzeug.test import Client

    from shared.api.app import CirrusApp
    from shared.api.mounts import default_mounts
    from shared.cli.crl import run_publish
    from shared.cli.init import init_authority
    from shared.config import Settings
    from shared.runtime import build_services

    ca = workdir / "ca"
    # A low PBES2 count only speeds up this setup: servers never decrypt the provisioner key.
    init_authority(ca, name="Bench", p2c=1000)
    keys = {"CIRRUS_STORE": "store", "CIRRUS_BLOBS": "blobs"}
    settings = Settings.load(ca / "config.json", overrides={keys[k]: v for k, v in overrides.items() if k in keys})
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _SUBJECT)]))
        .sign(key, hashes.SHA256())
    )
    fixture = Fixture(ca=ca, ocsp_der=b"", jwk=json.loads((ca / "secrets" / "provisioner.jwk").read_text()),
                      csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode())  # fmt: skip
    services = build_services(settings)
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        resp = api.post("/1.0/sign", data=fixture.sign_body(), content_type="application/json")
        if resp.status_code != 201:
            raise SystemExit(f"bench setup: sign failed: {resp.get_data(as_text=True)}")
        cert = x509.load_pem_x509_certificate(resp.get_json()["crt"].encode())
        run_publish(services)
    finally:
        services.close()
    issuer = x509.load_pem_x509_certificate((ca / "certs" / "intermediate_ca.crt").read_bytes())
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    fixture.ocsp_der = req.public_bytes(serialization.Encoding.DER)
    return fixture


# ------------------------------------------------------------------ one cold start
def _request_for(name: str, signature: str, fixture: Fixture) -> tuple[str, str, bytes, dict[str, str]]:
    if name == "ocsp":
        return "POST", "/ocsp", fixture.ocsp_der, {"Content-Type": "application/ocsp-request"}
    if name == "ca_api":
        return "POST", "/1.0/sign", fixture.sign_body(), {"Content-Type": "application/json"}
    if signature == "http":
        return "GET", "/health", b"", {}
    body = json.dumps({"message": {"data": "eyJqb2IiOiJiZW5jaCJ9", "messageId": "1"}}).encode()
    return (
        "POST",
        "/",
        body,
        {
            "Content-Type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": secrets.token_hex(8),
            "ce-source": "//pubsub.googleapis.com/projects/bench/topics/tick",
            "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        },
    )


def _tree_env(tree: Path, env: dict[str, str]) -> dict[str, str]:
    """`env` with the tree's own `shared` first on the path."""
    out = dict(env)
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(REPO)]
    out["PYTHONPATH"] = os.pathsep.join([str(tree), *rest])
    return out


def cold_start(tree: Path, name: str, signature: str, env: dict[str, str], fixture: Fixture,
               source: Path | None = None) -> dict[str, float]:  # fmt: skip
    """Spawn the function from `tree` (or `source`), poll until its first request succeeds; return the timings in ms."""
    port = free_port()
    method, path, body, headers = ("GET", "/", b"", {}) if source else _request_for(name, signature, fixture)
    cmd = [sys.executable, "-m", "functions_framework", "--target", name, "--source",
           str(source or tree / "functions" / "main.py"), "--signature-type", signature, "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=tree, env=_tree_env(tree, env), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = t0 + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{name} did not answer within 60 s")
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
            except OSError:
                time.sleep(0.002)
                continue
            t_listen = time.perf_counter()
            conn.settimeout(30)  # the 1 s above was for connecting; a first request may take longer
            hc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            hc.sock = conn
            hc.request(method, path, body=body or None, headers=headers)
            resp = hc.getresponse()
            payload = resp.read()
            t_done = time.perf_counter()
            hc.close()
            if resp.status not in (200, 201):
                raise RuntimeError(f"{name}: first request answered {resp.status}: {payload[:300]!r}")
            if name == "ocsp" and payload[:1] != b"\x30":
                raise RuntimeError("ocsp: answer is not DER")
            if name == "ca_api" and b"BEGIN CERTIFICATE" not in payload:
                raise RuntimeError("ca_api: /sign answered no certificate")
            timings = {
                "first_answer_ms": (t_done - t0) * 1000,
                "listen_ms": (t_listen - t0) * 1000,
                "first_request_ms": (t_done - t_listen) * 1000,
            }
            break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    # CPU time of the server (gunicorn's master, and its worker, which the master reaps on SIGTERM):
    # it moves far less than wall time with other load on the machine, so it compares trees best there.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    timings["cpu_ms"] = (usage.ru_utime - usage0.ru_utime + usage.ru_stime - usage0.ru_stime) * 1000
    return timings


# ------------------------------------------------------------------ import times
_FIRST_CALL = """
import sys
import functions.main
from functions_framework import create_app
app = create_app({name!r}, {main!r}, signature_type={sig!r}).test_client()
sys.stderr.write("COLD_START_MARK\\n"); sys.stderr.flush()
r = app.open({path!r}, method={method!r}, data={body!r}, headers={headers!r})
assert r.status_code in (200, 201), (r.status_code, r.get_data()[:300])
"""


def parse_importtime(text: str) -> tuple[list[tuple[int, str, int]], list[tuple[int, str, int]]]:
    """(before, after) the marker: (depth, module, cumulative µs) per `-X importtime` line."""
    before: list[tuple[int, str, int]] = []
    after: list[tuple[int, str, int]] = []
    current = before
    for line in text.splitlines():
        if line.startswith("COLD_START_MARK"):
            current = after
            continue
        m = _IMPORTTIME.match(line)
        if m:
            current.append((len(m.group(3)) // 2, m.group(4), int(m.group(2))))
    return before, after


def import_profile(tree: Path, name: str, signature: str, env: dict[str, str], fixture: Fixture) -> dict[str, Any]:
    """`functions.main` import time, and the lazy imports of the function's first call (one process)."""
    method, path, body, headers = _request_for(name, signature, fixture)
    code = _FIRST_CALL.format(name=name, main=str(tree / "functions" / "main.py"), sig=signature, path=path,
                              method=method, body=body, headers=headers)  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=tree, env=_tree_env(tree, env), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"import profile of {name} failed: {proc.stderr[-2000:]}")
    before, after = parse_importtime(proc.stderr)
    main_us = next(us for depth, mod, us in before if mod == "functions.main" and depth == 0)
    lazy_us = sum(us for depth, _, us in after if depth == 0)
    return {
        "module_import_ms": main_us / 1000,
        "first_call_import_ms": lazy_us / 1000,
        "first_call_modules": float(len(after)),
        "_lines": before + after,
    }


def top_imports(lines: list[tuple[int, str, int]], limit: int = 12) -> list[dict[str, Any]]:
    """The heaviest imports (depth <= 2) of the function's own code: where its import time goes.

    `-X importtime` prints children before their parent, so each depth-0 line closes a block. Blocks
    before `functions.main`'s (interpreter start-up: site, encodings) are left out: no code of ours
    can change them.
    """
    blocks: list[list[tuple[int, str, int]]] = [[]]
    for line in lines:
        blocks[-1].append(line)
        if line[0] == 0:
            blocks.append([])
    start = next((i for i, b in enumerate(blocks) if b and b[-1][1] == "functions.main"), 0)
    best: dict[str, int] = {}
    for block in blocks[start:]:
        for depth, mod, us in block:
            if depth <= 2 and mod != "functions.main":
                best[mod] = max(best.get(mod, 0), us)
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:limit]
    return [{"module": mod, "cumulative_ms": round(us / 1000, 1)} for mod, us in ranked]


_FLOORS = '''"""Functions that are not Cirrus's: what any Python function pays before its own work."""


def framework(request):
    return "ok"


def framework_google_sdks(request):
    import os

    from google.cloud import firestore, storage

    firestore.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).collection("floor").document("x").get()
    storage.Client(project=os.environ["GOOGLE_CLOUD_PROJECT"]).bucket(os.environ["FLOOR_BUCKET"]).get_blob("x")
    return "ok"
'''


def floors(workdir: Path, env: dict[str, str], fixture: Fixture, repeat: int, sdks: bool) -> dict[str, Any]:
    """Spawn-to-first-answer of functions that are not ours (see `floors` above), medians of `repeat`."""
    source = workdir / "floors.py"
    source.write_text(_FLOORS)
    names = ["framework"] + (["framework_google_sdks"] if sdks else [])
    env = dict(env)
    env["FLOOR_BUCKET"] = env.get("CIRRUS_BLOBS", "gs://none").removeprefix("gs://")
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for n in names:  # warm the .pyc files, as for our functions
        cold_start(REPO, n, "http", env, fixture, source=source)
    for _ in range(repeat):
        for n in names:
            runs[n].append(cold_start(REPO, n, "http", env, fixture, source=source))
    out: dict[str, Any] = {n: {k: summary([r[k] for r in runs[n]]) for k in ("first_answer_ms", "cpu_ms")}
                           for n in names}  # fmt: skip
    out["budget_left_ms"] = round(TARGET_MS - out["framework"]["first_answer_ms"]["median"], 1)
    return out


def python_startup(env: dict[str, str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _entry(
    name: str,
    signature: str,
    fixture: Fixture,
    runs: list[dict[str, float]],
    profiles: list[dict[str, Any]],
    errors: list[str],
) -> dict[str, Any]:
    method, path, _, _ = _request_for(name, signature, fixture)
    entry: dict[str, Any] = {"signature": signature, "first_request": f"{method} {path}"}
    if errors:
        entry["failed_runs"] = errors
    if not runs or not profiles:
        return entry
    for key in ("first_answer_ms", "listen_ms", "first_request_ms", "cpu_ms"):
        entry[key] = summary([r[key] for r in runs])
    for key in ("module_import_ms", "first_call_import_ms", "first_call_modules"):
        entry[key] = summary([pr[key] for pr in profiles])
    if name in ("ca_api", "ocsp"):
        entry["target_ms"] = TARGET_MS
        entry["meets_target"] = entry["first_answer_ms"]["median"] < TARGET_MS
        entry["heaviest_imports"] = top_imports(profiles[len(profiles) // 2]["_lines"])
    return entry


def measure(trees: dict[str, Path], functions: dict[str, str], env: dict[str, str], fixture: Fixture,
            repeat: int) -> dict[str, Any]:  # fmt: skip
    """Every function `repeat` times from every tree, round-robin, so load from elsewhere spreads evenly.

    With two trees each function runs from both back to back, the first one alternating per repetition,
    so neither tree always gets the warmer (or the noisier) slot.
    """
    labels = list(trees)
    runs = {(t, n): [] for t in labels for n in functions}  # type: dict[tuple[str, str], list[dict[str, float]]]
    profiles = {(t, n): [] for t in labels for n in functions}  # type: dict[tuple[str, str], list[dict[str, Any]]]
    errors = {(t, n): [] for t in labels for n in functions}  # type: dict[tuple[str, str], list[str]]
    # Warm the OS page cache and write the .pyc files once per tree and function (each function
    # imports its own modules), as a deployed image has them.
    for tree in trees.values():
        for name, signature in functions.items():
            cold_start(tree, name, signature, env, fixture)
    for i in range(repeat):
        order = labels if i % 2 == 0 else labels[::-1]
        for name, signature in functions.items():
            for label in order:
                key = (label, name)
                try:
                    runs[key].append(cold_start(trees[label], name, signature, env, fixture))
                    profiles[key].append(import_profile(trees[label], name, signature, env, fixture))
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    # One stuck run (a busy emulator) must not lose the others; it is reported, not hidden.
                    errors[key].append(f"{type(exc).__name__}: {str(exc)[:300]}")
                    print(f"{label} {name}: run failed: {exc}", file=sys.stderr)
    results: dict[str, Any] = {}
    for name, signature in functions.items():
        per_tree = {label: _entry(name, signature, fixture, runs[(label, name)], profiles[(label, name)],
                                  errors[(label, name)]) for label in labels}  # fmt: skip
        for label in labels:
            if "first_answer_ms" in per_tree[label]:
                print(f"{label} {name}: first answer {per_tree[label]['first_answer_ms']['median']} ms "
                      f"(median of {len(runs[(label, name)])})", file=sys.stderr)  # fmt: skip
        if len(labels) == 1:
            results[name] = per_tree[labels[0]]
            continue
        entry: dict[str, Any] = dict(per_tree)
        this, base = per_tree.get("this", {}), per_tree.get("baseline", {})
        entry["ratio"] = {
            key: round(this[key]["median"] / base[key]["median"], 2)
            for key in ("first_answer_ms", "listen_ms", "first_request_ms", "cpu_ms", "module_import_ms",
                        "first_call_import_ms", "first_call_modules")
            if key in this and key in base and base[key]["median"]
        }
        results[name] = entry
    return results


def cpu_model() -> str:
    """The processor's name (Linux), so figures are read against the machine that took them."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def emulator_overrides(env: dict[str, str]) -> dict[str, str] | None:
    """CIRRUS_STORE / CIRRUS_BLOBS on the Firestore emulator and fake-gcs-server, if both are running."""
    firestore, gcs = env.get("FIRESTORE_EMULATOR_HOST"), env.get("STORAGE_EMULATOR_HOST")
    if not firestore or not gcs:
        return None
    import urllib.request

    run_id = secrets.token_hex(4)
    bucket = f"cirrus-bench-{run_id}"
    req = urllib.request.Request(
        f"{gcs.rstrip('/')}/storage/v1/b?project=cirrus-bench",
        data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10):
        pass
    return {
        "CIRRUS_STORE": f"firestore:projects/cirrus-bench/databases/(default)?prefix=bench{run_id}-",
        "CIRRUS_BLOBS": f"gs://{bucket}",
        "GOOGLE_CLOUD_PROJECT": "cirrus-bench",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--functions", default="", help="comma-separated subset (default: every entry point)")
    p.add_argument(
        "--shape",
        choices=("local", "emulators", "both"),
        default="local",
        help="local: SQLite + blob folder; emulators: Firestore emulator + fake-gcs-server (needs "
        "FIRESTORE_EMULATOR_HOST and STORAGE_EMULATOR_HOST, from `infra/emulators.sh env`)",
    )
    p.add_argument("--baseline", default="", help="another checkout to compare with, run alternately in the same run")
    args = p.parse_args()

    trees = {"this": REPO}
    if args.baseline:
        baseline = Path(args.baseline).resolve()
        if not (baseline / "functions" / "main.py").is_file():
            p.error(f"--baseline {args.baseline}: no functions/main.py there")
        trees["baseline"] = baseline
    functions = entry_points()
    if args.baseline:
        theirs = entry_points(trees["baseline"] / "functions" / "main.py")
        functions = {n: sig for n, sig in functions.items() if theirs.get(n) == sig}
    if args.functions:
        wanted = [f.strip() for f in args.functions.split(",") if f.strip()]
        unknown = set(wanted) - set(functions)
        if unknown:
            p.error(f"unknown function(s): {', '.join(sorted(unknown))}")
        functions = {n: functions[n] for n in wanted}

    # Bytecode is written (PYTHONDONTWRITEBYTECODE dropped) so the warm-up leaves the .pyc files a deployed
    # image has: without them every run would pay compiling `shared` from source, which no instance does.
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CIRRUS_") and k != "PYTHONDONTWRITEBYTECODE"}
    base_env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), base_env.get("PYTHONPATH", "")) if x)
    shapes: dict[str, dict[str, str]] = {}
    if args.shape in ("local", "both"):
        shapes["local"] = {}
    if args.shape in ("emulators", "both"):
        overrides = emulator_overrides(base_env)
        if overrides is None:
            p.error("--shape emulators needs FIRESTORE_EMULATOR_HOST and STORAGE_EMULATOR_HOST")
        shapes["emulators"] = overrides

    out: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "machine": cpu_model(),
        "trees": {label: str(path) for label, path in trees.items()},
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "repeat": args.repeat,
        "python_startup_ms": summary(python_startup(base_env, args.repeat)),
        "target_ms": TARGET_MS,
    }
    for shape, overrides in shapes.items():
        workdir = Path(tempfile.mkdtemp(prefix="cirrus-cold-start-"))
        try:
            env = dict(base_env)
            env.update(overrides)
            if shape == "local":
                env = {k: v for k, v in env.items() if not k.endswith("_EMULATOR_HOST")}
            saved = dict(os.environ)
            os.environ.update(overrides)  # prepare() runs in this process against the same backends
            try:
                fixture = prepare(workdir, overrides)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            env["CIRRUS_CONFIG"] = str(fixture.ca / "config.json")
            print(f"== shape {shape}", file=sys.stderr)
            out[shape] = {"store": env.get("CIRRUS_STORE", "sqlite (config.json)"), "functions": measure(
                trees, functions, env, fixture, args.repeat)}  # fmt: skip
            out[shape]["floors"] = floors(workdir, env, fixture, args.repeat, sdks=shape == "emulators")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
