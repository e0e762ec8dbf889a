"""`cirrus endpoints list|show`: endpoints and their certificate lineage, read from the store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.cli.errors import CLIError
from shared.cli.folder import load_settings
from shared.clock import SystemClock
from shared.endpoints import EndpointView, describe
from shared.store.open import open_store


def register(sub: Any) -> None:
    """Add `cirrus endpoints`."""
    p = sub.add_parser("endpoints", help="list endpoints and show certificate lineage")
    esub = p.add_subparsers(dest="endpoints_command", metavar="ACTION")
    lp = esub.add_parser("list", help="list endpoints")
    lp.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    lp.add_argument("--json", action="store_true", help="print JSON")
    lp.add_argument("--limit", type=_limit, default=100, help="list at most this many (1..10000, default 100)")
    lp.set_defaults(func=cmd_list)
    sp = esub.add_parser("show", help="show one endpoint's lineage")
    sp.add_argument("id", help="endpoint id (from `cirrus endpoints list`)")
    sp.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    sp.add_argument("--json", action="store_true", help="print JSON")
    sp.set_defaults(func=cmd_show)


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 10000, not {text!r}")
    return int(text)


def view_json(view: EndpointView) -> dict[str, Any]:
    """An endpoint and its lineage as JSON."""
    e = view.endpoint
    return {
        "id": e.id,
        "name": e.name,
        "provisionerId": e.provisioner_id,
        "createdAt": e.created_at.isoformat(),
        "activeCertificates": view.active_count,
        "certificates": [
            {
                "serial": le.record.serial,
                "operation": le.record.operation,
                "renewedFrom": le.record.renewed_from,
                "notBefore": le.record.not_before.isoformat(),
                "notAfter": le.record.not_after.isoformat(),
                "status": le.status,
                "sans": list(le.record.sans),
            }
            for le in view.lineage
        ],
    }


def _views(args: argparse.Namespace, only: str | None = None) -> list[EndpointView]:
    clock = SystemClock()
    settings = load_settings(args.dir)
    store = open_store(settings.store, clock=clock)
    try:
        if only is not None:
            endpoint = store.get_endpoint(only)
            endpoints = [endpoint] if endpoint else []
        else:
            endpoints = list(store.list_endpoints(limit=args.limit))
        return [describe(e, certificates=store, revocations=store, now=clock.now()) for e in endpoints]
    finally:
        store.close()


def cmd_list(args: argparse.Namespace) -> int:
    """List endpoints."""
    views = _views(args)
    if args.json:
        print(json.dumps([view_json(v) for v in views], indent=2))
        return 0
    print(f"{'ENDPOINT':<40} {'NAME':<30} {'CERTS':>5} {'ACTIVE':>6}")
    for v in views:
        print(f"{v.endpoint.id:<40} {v.endpoint.name[:30]:<30} {len(v.lineage):>5} {v.active_count:>6}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Show one endpoint's lineage."""
    views = _views(args, only=args.id)
    if not views:
        raise CLIError(f"no endpoint {args.id}")
    v = views[0]
    if args.json:
        print(json.dumps(view_json(v), indent=2))
        return 0
    print(f"Endpoint {v.endpoint.id} ({v.endpoint.name}), created {v.endpoint.created_at.isoformat()}")
    print(f"{'SERIAL':<48} {'OP':<6} {'STATUS':<8} {'NOT AFTER':<26} RENEWED FROM")
    for le in v.lineage:
        r = le.record
        print(f"{r.serial:<48} {r.operation:<6} {le.status:<8} {r.not_after.isoformat():<26} {r.renewed_from or '-'}")
    return 0
