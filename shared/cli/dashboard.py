"""`cirrus dashboard token`: print an admin sign-in token for the dashboard at `/dashboard`.

Each call makes a new random token valid for `--hours` (default 12); only its SHA-256
is stored, in the authority's store, so any instance sharing the store accepts it.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from shared.cli.folder import load_settings
from shared.clock import SystemClock
from shared.dashboard.session import issue_admin_token
from shared.store.open import open_store


def register(sub: Any) -> None:
    """Add `cirrus dashboard`."""
    p = sub.add_parser("dashboard", help="the operator dashboard at /dashboard")
    dsub = p.add_subparsers(dest="dashboard_command", metavar="ACTION")
    tp = dsub.add_parser("token", help="print a new admin sign-in token")
    tp.add_argument("--dir", type=Path, default=Path("."), help="authority folder made by `cirrus init` (default .)")
    tp.add_argument("--hours", type=_hours, default=12, help="how long the token signs in (1..168 hours, default 12)")
    tp.set_defaults(func=cmd_token)


def _hours(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 168:
        raise argparse.ArgumentTypeError(f"must be a number of hours from 1 to 168, not {text!r}")
    return int(text)


def cmd_token(args: argparse.Namespace) -> int:
    """Store a new token's hash and print the token (stdout only; never logged)."""
    settings = load_settings(args.dir)
    clock = SystemClock()
    store = open_store(settings.store, clock=clock)
    try:
        token = issue_admin_token(store, clock.now(), dt.timedelta(hours=args.hours))
    finally:
        store.close()
    print(token)
    return 0
