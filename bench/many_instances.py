"""Many Cloud Function instances on one Firestore: certificates/s and the operation counts per certificate.

The workload of tests/e2e/test_many_instances.py, bigger: `--ca` Functions Framework instances of
`ca_api` and `--issuers` of `issuer` (deployed settings, as infra/cloud_local.py gives them) on one
Firestore emulator prefix; every one-time token is redeemed at every `ca_api` instance at once,
every certificate renewed with two tokens at once (each at two instances), half of them revoked with
a token raced across all instances. The books are then checked from the store (the test's checks)
and one JSON object is printed: wall seconds of the workload, certificates handed out per second,
requests per second, and the operation counts per certificate.

The emulator is one JVM on this machine, so the figure is this machine's, not Firestore's.

Usage (emulators from `infra/emulators.sh env`):
    python bench/many_instances.py [--ca 3] [--issuers 2] [--certificates 40] > result.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from test_many_instances import EMULATOR_VARS, check_books, run_workload, start_fleet, stop_fleet  # noqa: E402

from shared.cli.init import init_authority  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ca", type=int, default=3, help="ca_api instances (default 3)")
    parser.add_argument("--issuers", type=int, default=2, help="issuer instances (default 2)")
    parser.add_argument("--certificates", type=int, default=40, help="certificates signed (default 40)")
    args = parser.parse_args()
    missing = [v for v in EMULATOR_VARS if not os.environ.get(v)]
    if missing:
        parser.error(f"{', '.join(missing)} not set: eval \"$(bash infra/emulators.sh env)\"")
    if min(args.ca, args.issuers, args.certificates) < 1:
        parser.error("--ca, --issuers and --certificates must be at least 1")
    with tempfile.TemporaryDirectory(prefix="cirrus-many-") as tmp:
        base = Path(tmp)
        init_authority(base / "ca", name="Bench", p2c=1000)
        fleet = start_fleet(base / "ca", base / "logs", ca_instances=args.ca, issuer_instances=args.issuers)
        try:
            ledger, seconds = run_workload(fleet, base, certificates=args.certificates)
            report = check_books(fleet, ledger)
        finally:
            stop_fleet(fleet)
    shapes = collections.Counter(json.dumps(c, sort_keys=True) for c in report["certificates"].values())
    print(
        json.dumps(
            {
                "caInstances": args.ca,
                "issuerInstances": args.issuers,
                "seconds": round(seconds, 3),
                "certificatesPerSecond": round(report["handedOut"] / seconds, 1),
                "requestsPerSecond": round(report["requests"] / seconds, 1),
                "handedOut": report["handedOut"],
                "recorded": report["recorded"],
                "endpoints": report["endpoints"],
                "revoked": report["revoked"],
                "operationCountsPerCertificate": [
                    {"certificates": n, "counts": json.loads(shape)} for shape, n in shapes.most_common()
                ],
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
