"""`cirrus acme eab add|list|remove`: external account binding keys in the store.

The HMAC key is printed once, at `add`; the store keeps it for verification
but `list` never shows it. Keys belong to one ACME provisioner, which must
exist in `config.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.cli import at_rest
from shared.cli.errors import CLIError
from shared.cli.folder import load_settings
from shared.clock import SystemClock


def register(sub: Any) -> None:
    """Add `cirrus acme`."""
    p = sub.add_parser("acme", help="ACME administration")
    asub = p.add_subparsers(dest="acme_command", metavar="AREA")
    e = asub.add_parser("eab", help="external account binding keys")
    esub = e.add_subparsers(dest="eab_command", metavar="ACTION")
    add = esub.add_parser("add", help="create a key (prints the HMAC key once)")
    add.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    add.add_argument("--provisioner", required=True, help="the ACME provisioner the key is for")
    add.add_argument("--reference", default="", help="an operator label, unique per provisioner")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(func=cmd_add)
    ls = esub.add_parser("list", help="list a provisioner's keys")
    ls.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    ls.add_argument("--provisioner", required=True, help="the ACME provisioner whose keys to list")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=cmd_list)
    rm = esub.add_parser("remove", help="remove a key (it never verifies again)")
    rm.add_argument("kid", help="the key ID printed by `add`")
    rm.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    rm.add_argument("--provisioner", required=True, help="the ACME provisioner the key belongs to")
    rm.set_defaults(func=cmd_remove)


def _open(args: argparse.Namespace) -> Any:
    from shared.store.open import open_store

    settings = load_settings(args.dir)
    names = {str(p.get("name")) for p in settings.provisioners if str(p.get("type", "")).upper() == "ACME"}
    if args.provisioner not in names:
        raise CLIError(f"no ACME provisioner named {args.provisioner!r}")
    store = open_store(settings.store, clock=SystemClock())
    try:
        at_rest.check(settings)  # EAB keys are secrets: not into a store others can read
    except CLIError:
        store.close()
        raise
    return store


def cmd_add(args: argparse.Namespace) -> int:
    """Create an EAB key."""
    from shared.acme import eab

    store = _open(args)
    try:
        kid, key = eab.add_key(store, SystemClock(), provisioner=args.provisioner, reference=args.reference)
    except ValueError as exc:  # eab's refusal, e.g. a reference already used
        raise CLIError(str(exc)) from exc
    finally:
        store.close()
    if args.json:
        print(json.dumps({"kid": kid, "hmacKey": key, "provisioner": args.provisioner}))
    else:
        print(f"Key ID:   {kid}\nHMAC key: {key}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List EAB keys (never their secrets)."""
    from shared.acme import eab

    store = _open(args)
    try:
        keys = eab.list_keys(store, provisioner=args.provisioner)
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "kid": k.kid,
                        "reference": k.reference,
                        "createdAt": k.created_at,
                        "boundAt": k.bound_at,
                        "accountId": k.account_id,
                        "removed": k.removed,
                    }
                    for k in keys
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'KEY ID':<24} {'REFERENCE':<20} {'CREATED':<22} {'BOUND TO':<24} REMOVED")
    for k in keys:
        print(
            f"{k.kid:<24} {k.reference[:20]:<20} {k.created_at:<22} "
            f"{k.account_id or '-':<24} {'yes' if k.removed else 'no'}"
        )
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove an EAB key."""
    from shared.acme import eab

    store = _open(args)
    try:
        ok = eab.remove_key(store, args.kid, provisioner=args.provisioner)
    finally:
        store.close()
    if not ok:
        raise CLIError(f"no EAB key {args.kid}")
    print(f"removed {args.kid}")
    return 0
