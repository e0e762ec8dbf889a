"""Latency of the dashboard's endpoint list page with 100,000 endpoints on SQLite.

Method: a fresh `cirrus init` authority (SQLite store) is filled with N endpoints,
each with one certificate (placeholder DER: the list never parses it), expiries
spread over a year, written with `record_issuances` in batches of 1,000. The real
app (`CirrusApp` with the default mounts) serves signed-in GETs through werkzeug's
test client (no HTTP server or TLS), so this measures the page: session check, the
store queries (keyset by endpoint id, or the `(authority_id, not_after, serial)`
range for the expiry sort), one indexed lineage read and one revocation lookup per
row, and the HTML. Each variant is requested `--requests` times after 5 warm-ups.
Target (issue 17): the endpoint list page in under 100 ms (p95) at 100,000 endpoints.

Usage: python bench/dashboard_endpoints.py [--endpoints 100000] [--requests 200] > result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.init import init_authority
from shared.config import Settings
from shared.dashboard import session
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef
from shared.runtime import build_services
from shared.store.base import IssuanceWrite


def fill(services: object, count: int) -> float:
    s = services
    store = s.store  # type: ignore[attr-defined]
    authority_id = s.settings.authority_id  # type: ignore[attr-defined]
    prov = next(iter(s.provisioners)).ref  # type: ignore[attr-defined]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    started = time.perf_counter()
    for first in range(0, count, 1000):
        writes = []
        for i in range(first, min(first + 1000, count)):
            name = f"host-{i:06d}.example.com"
            endpoint = Endpoint(id=f"ep-{i:08d}", authority_id=authority_id, provisioner_id=prov.id,
                                subject_key=name, name=name, created_at=now)
            cert = CertificateRecord(
                serial=str(10**20 + i), authority_id=authority_id, kind=CertificateKind.X509, der=b"\x30\x00",
                not_before=now, not_after=now + dt.timedelta(minutes=1 + (i * 5) % 525_600),
                provisioner=ProvisionerRef(id=prov.id, name=prov.name, type=prov.type), endpoint_id=endpoint.id,
                subject_key=name, common_name=name, sans=(name,), issued_at=now,
            )
            writes.append(IssuanceWrite(certificate=cert, new_endpoint=endpoint))
        outcomes = store.record_issuances(writes)
        assert not any(outcomes), outcomes
    return time.perf_counter() - started


def time_pages(client: Client, variants: dict[str, str], *, requests: int, warmup: int,
               digits: int) -> dict[str, dict[str, float]]:
    """p50/p95/max in ms of each dashboard page (after `warmup` untimed requests); every answer must be 200."""
    results = {}
    for label, path in variants.items():
        for _ in range(warmup):
            assert client.get("https://localhost" + path).status_code == 200
        times = []
        for _ in range(requests):
            t0 = time.perf_counter()
            resp = client.get("https://localhost" + path)
            times.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 200
        times.sort()
        results[label] = {
            "p50_ms": round(statistics.median(times), digits),
            "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], digits),
            "max_ms": round(times[-1], digits),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "ca"
        init_authority(d, name="Bench", p2c=1000)
        services = build_services(Settings.load(d / "config.json"))
        fill_s = fill(services, args.endpoints)
        client = Client(CirrusApp(services, mounts=default_mounts(services)))
        token = session.issue_admin_token(services.store, services.clock.now())
        r = client.post("https://localhost/dashboard/signin", data={"token": token})
        assert r.status_code == 303, r.status_code
        prov = next(iter(services.provisioners)).ref.id
        variants = {
            "first page": "/dashboard/endpoints",
            "page after host-050000": "/dashboard/endpoints?after=ep-00050000",
            "search 'host-0999' (bounded scan)": "/dashboard/endpoints?q=host-0999",
            "provisioner and status=active": f"/dashboard/endpoints?provisioner={prov}&status=active",
            "sort by expiry": "/dashboard/endpoints?sort=expiry",
            "CSV of the first page": "/dashboard/endpoints?format=csv",
        }
        results = time_pages(client, variants, requests=args.requests, warmup=5, digits=2)
        services.close()
    print(json.dumps({"endpoints": args.endpoints, "fill_seconds": round(fill_s, 1), "requests": args.requests,
                      "target_p95_ms": 100, "pages": results}, indent=2))


if __name__ == "__main__":
    main()
