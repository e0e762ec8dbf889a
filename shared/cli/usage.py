"""`cirrus usage --month YYYY-MM`: the month's usage in endpoint-months, from the store's records."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared import metering
from shared.cli.errors import CLIError
from shared.cli.folder import load_settings
from shared.clock import SystemClock
from shared.store.base import UsageReader
from shared.store.open import open_store
from shared.usage import UsageReport, read_report, report_csv, report_json


def register(sub: Any) -> None:
    """Add `cirrus usage`."""
    p = sub.add_parser("usage", help="usage in endpoint-months for one calendar month (UTC)")
    p.add_argument("--month", required=True, help="the month, YYYY-MM (UTC)")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON")
    form.add_argument("--csv", action="store_true", help="print CSV")
    p.add_argument("--dir", type=Path, default=Path("."), help="authority folder made by `cirrus init` (default: .)")
    p.set_defaults(func=cmd_usage)


def cmd_usage(args: argparse.Namespace) -> int:
    """Print the month's report."""
    try:
        metering.parse_month(args.month)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    settings = load_settings(args.dir)
    store = open_store(settings.store, clock=SystemClock())
    try:
        if not isinstance(store, UsageReader):
            raise CLIError(f"the store {type(store).__name__} keeps no usage records")
        report = read_report(store, args.month)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report_json(report), indent=2))
    elif args.csv:
        sys.stdout.write(report_csv(report))
    else:
        _print_table(report)
    return 0


def _print_table(report: UsageReport) -> None:
    print(f"{report.month}: {report.endpoint_months} endpoint-months, {len(report.lines)} endpoints")
    if report.lines:
        print(f"{'ENDPOINT':<40} {'NAME':<30} {'UNITS':>5} {'PEAK':>4}  BILLABLE")
    for line in report.lines:
        print(
            f"{line.endpoint_id:<40} {line.name[:30]:<30} {line.units:>5} {line.peak_active:>4}  "
            f"{line.billable_from} .. {line.billable_to}"
        )
