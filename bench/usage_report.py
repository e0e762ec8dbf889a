"""The month's usage report at scale: 100,000 endpoints with 1,000,000 certificates over a year, on SQLite.

Method (fixed so runs compare):
- Data set: `--endpoints` endpoints (default 100,000) with `--certificates` certificates
  (default 1,000,000: ten each) over 2026. Each endpoint starts at a random instant of its
  first 36 days and renews every 36.5 days with 45-day certificates (two active during each
  handover); one endpoint in a hundred instead gets 180-day certificates on the same
  schedule, so about five are active at once (peak 5 or 6: 3 or 4 endpoint-months). Then `--revocations` certificates
  (default 1,000) picked at random are revoked one by one, each 10 days after its issue.
  The random generator is seeded (`--seed`), so the data set is the same each run.
- The data set is built through the store itself, so the endpoint-month records are kept
  exactly as issuance keeps them: certificates in issue order, `--batch` (default 1,000)
  per `record_issuances` call (one transaction each; the batch write the group commit
  uses), every certificate with a 300-byte DER and no events or token claim; then the
  revocations through `revoke`. `build_seconds` is that wall time, `us_per_certificate`
  the build time per certificate (metering included).
- Timed: `shared.usage.read_report` of `--month` (default 2026-06) on a freshly opened
  store (wall time, `time.perf_counter`), `--rounds` times (default 5); the median and the
  maximum are printed with the report's total and number of endpoints, and the process CPU
  time of the median round and the machine's load average (on a shared machine the wall
  time is mostly waiting for a core). Target: under 2 s.
  `report_json_seconds` adds encoding the report as the JSON `cirrus usage --json` prints.

Run: `python bench/usage_report.py [--endpoints 100000] [--certificates 1000000] [--db PATH]`.
Prints one JSON object. `--db` keeps the file (a second run with the same `--db` reuses it
and only times the report).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef, Revocation
from shared.store.base import IssuanceWrite
from shared.store.sqlite import SQLiteStore
from shared.usage import read_report, report_json

YEAR_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PROVISIONER = ProvisionerRef(id="prov-bench", name="bench", type="JWK")
DER = b"\x30\x82\x01\x28" + bytes(296)


def _plan(endpoints: int, certificates: int, seed: int) -> list[tuple[dt.datetime, int, int]]:
    """(issued_at, endpoint index, certificate index) in issue order."""
    rng = random.Random(seed)
    per = max(1, certificates // endpoints)
    plan: list[tuple[dt.datetime, int, int]] = []
    for e in range(endpoints):
        start = YEAR_START + dt.timedelta(seconds=rng.uniform(0, 36 * 86400))
        for k in range(per):
            plan.append((start + dt.timedelta(days=36.5 * k), e, k))
    plan.sort()
    return plan


def _lifetime(endpoint_index: int) -> dt.timedelta:
    return dt.timedelta(days=180 if endpoint_index % 100 == 0 else 45)


def build(store: SQLiteStore, endpoints: int, certificates: int, batch: int, revocations: int, seed: int) -> float:
    """Record the data set; return the wall time."""
    t0 = time.perf_counter()
    plan = _plan(endpoints, certificates, seed)
    writes: list[IssuanceWrite] = []
    first: set[int] = set()
    issued_serials: list[tuple[str, dt.datetime, dt.datetime]] = []
    for n, (issued, e, k) in enumerate(plan):
        endpoint_id = f"ep-{e:08d}"
        serial = str(10**12 + n)
        new_endpoint = None
        if e not in first:
            first.add(e)
            new_endpoint = Endpoint(endpoint_id, "auth-bench", PROVISIONER.id, f"device-{e}", f"device-{e}", issued)
        record = CertificateRecord(
            serial=serial,
            authority_id="auth-bench",
            kind=CertificateKind.X509,
            der=DER,
            not_before=issued - dt.timedelta(minutes=1),
            not_after=issued + _lifetime(e),
            provisioner=PROVISIONER,
            endpoint_id=endpoint_id,
            subject_key=f"device-{e}",
            common_name=f"device-{e}",
            sans=(),
            issued_at=issued,
            renewed_from=None if k == 0 else "x",
            operation="sign" if k == 0 else "renew",
        )
        writes.append(IssuanceWrite(record, new_endpoint))
        issued_serials.append((serial, issued, record.not_after))
        if len(writes) == batch:
            _record(store, writes)
            writes = []
    if writes:
        _record(store, writes)
    rng = random.Random(seed + 1)
    for serial, issued, not_after in rng.sample(issued_serials, min(revocations, len(issued_serials))):
        revoked_at = issued + dt.timedelta(days=10)
        store.revoke(Revocation(serial=serial, authority_id="auth-bench", revoked_at=revoked_at, not_after=not_after))
    return time.perf_counter() - t0


def _record(store: SQLiteStore, writes: list[IssuanceWrite]) -> None:
    outcomes = store.record_issuances(writes)
    failed = [o for o in outcomes if o is not None]
    if failed:
        raise SystemExit(f"bench: {len(failed)} issuances refused: {failed[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--certificates", type=int, default=1_000_000)
    parser.add_argument("--revocations", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--month", default="2026-06")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--db", type=Path, default=None, help="keep the database here (reused if it exists)")
    args = parser.parse_args(argv)

    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="cirrus-usage-bench-")
        db = Path(tmp.name) / "usage.db"
    else:
        db = args.db
    reused = db.exists()
    result: dict[str, Any] = {
        "bench": "usage_report",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "endpoints": args.endpoints,
        "certificates": args.certificates,
        "revocations": args.revocations,
        "month": args.month,
        "reused_database": reused,
    }
    try:
        if not reused:
            store = SQLiteStore(db)
            seconds = build(store, args.endpoints, args.certificates, args.batch, args.revocations, args.seed)
            store.checkpoint()
            store.close()
            result["build_seconds"] = round(seconds, 1)
            result["us_per_certificate"] = round(seconds / max(1, args.certificates) * 1e6, 1)
        result["database_mib"] = round(db.stat().st_size / 2**20, 1)
        times: list[float] = []
        cpu_times: list[float] = []
        json_times: list[float] = []
        report = None
        for _ in range(args.rounds):
            store = SQLiteStore(db)
            t0, c0 = time.perf_counter(), time.process_time()
            report = read_report(store, args.month)
            t1, c1 = time.perf_counter(), time.process_time()
            cpu_times.append(c1 - c0)
            json.dumps(report_json(report), indent=2)
            t2 = time.perf_counter()
            store.close()
            times.append(t1 - t0)
            json_times.append(t2 - t0)
        assert report is not None
        result.update(
            {
                "report_seconds_median": round(statistics.median(times), 3),
                "report_seconds_max": round(max(times), 3),
                "report_cpu_seconds_median": round(statistics.median(cpu_times), 3),
                "load_average_1min": round(os.getloadavg()[0], 1),
                "report_json_seconds_median": round(statistics.median(json_times), 3),
                "report_endpoints": len(report.lines),
                "endpoint_months": report.endpoint_months,
                "target_seconds": 2.0,
                "within_target": statistics.median(times) < 2.0,
            }
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
