"""Time and peak memory to build, sign and publish a CRL of 100,000 and 1,000,000 entries.

Method: each size runs in a fresh child process (so peak RSS is that size's
own). The child makes a P-256 CA, generates N revocations with random
128-bit serials, every reason code and recent dates, and holds them in a
list-backed RevocationReader (what a store hands back); then it times one
`CRLPublisher.publish()`: counter, list_revocations, encoding, one ECDSA
signature, verification, and the conditional write to a local blob folder
(fsync on). Peak RSS is the child's `ru_maxrss` and includes the input
revocations. Target (issue 4): 1,000,000 entries in < 10 s and < 1 GiB.

Usage: python bench/crl_build.py [--sizes 100000,1000000] > result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.blobs.local import LocalBlobStore
from shared.clock import SystemClock
from shared.keys.softkms import SoftSigner
from shared.model import Revocation
from shared.validation.publisher import CRLAuthority, CRLPublisher, CRLSchedule


class ListRevocations:
    """A RevocationReader over a prepared list (plus a Counter)."""

    def __init__(self, revocations: list[Revocation]) -> None:
        self._revocations = revocations
        self._n = 0

    def get_revocation(self, serial: str) -> Revocation | None:
        return None

    def list_revocations(self, authority_id: str, *, not_after_since: dt.datetime) -> Sequence[Revocation]:
        return [r for r in self._revocations if r.not_after >= not_after_since]

    def next_value(self, name: str) -> int:
        self._n += 1
        return self._n


def _ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def child(n: int, shards: int) -> dict[str, object]:
    """Run one size and return its figures."""
    cert, key = _ca()
    now = dt.datetime.now(dt.UTC)
    revs = [
        Revocation(
            serial=str(secrets.randbits(128) | 1),
            authority_id="bench",
            revoked_at=now - dt.timedelta(seconds=i),
            not_after=now + dt.timedelta(days=30),
            reason_code=(0, 1, 3, 4, 5, 9)[i % 6],
        )
        for i in range(n)
    ]
    reader = ListRevocations(revs)
    del revs
    with tempfile.TemporaryDirectory() as tmp:
        publisher = CRLPublisher(
            revocations=reader,
            counter=reader,
            blobs=LocalBlobStore(root=Path(tmp)),
            clock=SystemClock(),
            schedule=CRLSchedule(base_url="http://bench.example"),
            authorities=[CRLAuthority("bench", cert, SoftSigner(key), shards=shards)],
        )
        t0 = time.perf_counter()
        results = publisher.publish()
        seconds = time.perf_counter() - t0
    return {
        "entries": n,
        "shards": shards,
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "crl_bytes": sum(r.size for r in results),
        "published": all(r.generation is not None for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--shards", type=int, default=0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.shards)))
        return
    runs = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--shards", str(args.shards)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    print(
        json.dumps(
            {
                "benchmark": "crl_build",
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "target": {"entries": 1_000_000, "seconds": 10, "peak_rss_mib": 1024},
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
