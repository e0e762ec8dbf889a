"""Latency of the dashboard's usage page with 100,000 billable endpoints a month on SQLite.

Method: a fresh `cirrus init` authority (SQLite store) gets the endpoint-month records of N
endpoints in each of the 12 months of 2026 (12 * N rows), written straight into the
`endpoint_months` table in one transaction: the page reads only these records (never
certificates), and building them through issuance (as `bench/usage_report.py` does) would
take minutes without changing what is read. One endpoint in a hundred has a peak of 5 (3
endpoint-months), the rest a peak of 1. The real app (`CirrusApp`, default mounts) serves
signed-in GETs through werkzeug's test client (no HTTP server or TLS), so this measures the
page: the session check, the month's total (`usage_total`) and one page of its records
(`page_endpoint_months`), the chart's totals (the page's month and the current one read each
time, the other ten from the instance's five-minute cache, which the 2 warm-ups fill: a cold
first request reads all twelve, about 0.5 s more at 100,000), and the HTML. Each variant is
requested `--requests` times; the page's month is June 2026. The CSV is the whole month
(every record read and written). Prints one JSON object.

Usage: python bench/dashboard_usage.py [--endpoints 100000] [--requests 20] > result.json
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard_endpoints import time_pages
from werkzeug.test import Client

from shared import metering
from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.init import init_authority
from shared.config import Settings
from shared.dashboard import session
from shared.runtime import build_services


def fill(db: Path, authority_id: str, count: int) -> float:
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    with conn:
        for m in range(1, 13):
            month = f"2026-{m:02d}"
            start, end = metering.month_bounds(month)
            conn.executemany(
                "INSERT INTO endpoint_months (month, endpoint_id, authority_id, name, billable_from, billable_to, "
                "peak_active) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((month, f"ep-{i:08d}", authority_id, f"host-{i:06d}.example.com", start, end, 5 if i % 100 == 0 else 1)
                 for i in range(count)),
            )
    conn.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "ca"
        init_authority(d, name="Bench", p2c=1000)
        settings = Settings.load(d / "config.json")
        services = build_services(settings)
        db = Path(settings.store.removeprefix("sqlite:"))
        fill_s = fill(db if db.is_absolute() else d / db, settings.authority_id, args.endpoints)
        client = Client(CirrusApp(services, mounts=default_mounts(services)))
        token = session.issue_admin_token(services.store, services.clock.now())
        assert client.post("https://localhost/dashboard/signin", data={"token": token}).status_code == 303
        variants = {
            "month page (first 50 lines, chart of 12 months)": "/dashboard/usage?month=2026-06",
            "month page after ep-00050000": "/dashboard/usage?month=2026-06&after=ep-00050000",
            "CSV of the whole month": "/dashboard/usage?month=2026-06&format=csv",
        }
        results = time_pages(client, variants, requests=args.requests, warmup=2, digits=1)
        page = client.get("https://localhost/dashboard/usage?month=2026-06").text
        expected = args.endpoints + 2 * len(range(0, args.endpoints, 100))
        assert f"<strong>{expected}</strong> endpoint-months" in page, "unexpected total"
        services.close()
    print(json.dumps({"endpoints": args.endpoints, "records": 12 * args.endpoints, "fill_seconds": round(fill_s, 1),
                      "requests": args.requests, "endpoint_months_2026_06": expected, "pages": results}, indent=2))


if __name__ == "__main__":
    main()
