"""`cirrus inventory create|import|list|get|set|delete`: manage inventories in the authority's store.

Every change goes through `shared.inventory.changes` (the admin API's path too), so it is
checked the same way and announced as an `inventory.changed` event to the configured sinks.
An import with bad rows writes nothing and names every bad row on stderr (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.cli.errors import MISTAKE, CLIError
from shared.cli.folder import load_settings
from shared.inventory.base import KINDS, MAX_PAGE, Inventory
from shared.inventory.changes import changes_for
from shared.inventory.imports import ImportRejected, parse_import
from shared.strict_json import StrictJSONError, loads_strict

if TYPE_CHECKING:
    from shared.runtime import Services


def register(sub: Any) -> None:
    """Add `cirrus inventory`."""
    p = sub.add_parser("inventory", help="manage inventories (catalogs looked up at issuance)")
    isub = p.add_subparsers(dest="inventory_command", metavar="ACTION")

    def action(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        ap: argparse.ArgumentParser = isub.add_parser(name, help=help_text)
        ap.add_argument("--dir", type=Path, default=Path("."), help="authority folder (default: .)")
        ap.add_argument("--json", action="store_true", help="print JSON")
        ap.set_defaults(func=func)
        return ap

    cp = action("create", "create an empty inventory", cmd_create)
    cp.add_argument("name", help="inventory name (a-z, 0-9, '_', '-')")
    cp.add_argument("--kind", required=True, choices=KINDS, help="what it catalogs")
    ip = action("import", "add or replace entries from a CSV or JSON file (all or nothing)", cmd_import)
    ip.add_argument("name", help="inventory name")
    ip.add_argument("file", type=Path, help="CSV with a header row including 'key', or JSON ('-' for stdin)")
    ip.add_argument("--format", choices=("csv", "json"), help="file format (default: from the name, else the text)")
    action("list", "list inventories", cmd_list)
    gp = action("get", "show an inventory's entries, or one entry", cmd_get)
    gp.add_argument("name", help="inventory name")
    gp.add_argument("key", nargs="?", help="entry key (omit to list entries)")
    gp.add_argument("--after", default="", help="list entries whose key sorts after this one")
    gp.add_argument("--limit", type=_limit, default=100, help=f"list at most this many (1..{MAX_PAGE}, default 100)")
    sp = action("set", "add or replace one entry", cmd_set)
    sp.add_argument("name", help="inventory name")
    sp.add_argument("key", help="entry key")
    sp.add_argument("entry", help="the entry, a JSON object")
    dp = action("delete", "delete an inventory (and its entries) or one entry", cmd_delete)
    dp.add_argument("name", help="inventory name")
    dp.add_argument("key", nargs="?", help="entry key (omit to delete the whole inventory)")


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to {MAX_PAGE}, not {text!r}")
    return int(text)


@contextmanager
def _services(args: argparse.Namespace) -> Iterator[Services]:
    from shared.runtime import build_services  # the composition root, only once a command runs

    services = build_services(load_settings(args.dir))
    try:
        yield services
    finally:
        services.close()


def _inventory_json(inventory: Inventory) -> dict[str, str]:
    return {"name": inventory.name, "kind": inventory.kind, "createdAt": inventory.created_at.isoformat()}


def _print(args: argparse.Namespace, value: Any, text: str) -> int:
    print(json.dumps(value, indent=2, ensure_ascii=False) if args.json else text)
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    """Create an inventory."""
    with _services(args) as s:
        inventory = changes_for(s, "cli").create(args.name, args.kind)
    return _print(args, _inventory_json(inventory), f"created inventory {inventory.name} ({inventory.kind})")


def _read_file(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    if not path.exists():
        raise CLIError(f"file {path} does not exist")
    if not path.is_file():
        raise CLIError(f"{path} is not a file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from None


def cmd_import(args: argparse.Namespace) -> int:
    """Import entries; on any bad row print every one and import nothing."""
    data = _read_file(args.file)
    fmt = args.format or {".csv": "csv", ".json": "json"}.get(args.file.suffix.lower())
    try:
        entries = parse_import(data, fmt=fmt)
    except ImportRejected as exc:
        prog = getattr(args, "cli_prog", None) or "cirrus inventory import"
        for problem in exc.problems:
            print(f"{prog}: {args.file}: {problem}", file=sys.stderr)
        print(f"{prog}: {exc}", file=sys.stderr)
        return MISTAKE
    with _services(args) as s:
        count = changes_for(s, "cli").put(args.name, entries)
    return _print(args, {"inventory": args.name, "imported": count}, f"imported {count} entries into {args.name}")


def cmd_list(args: argparse.Namespace) -> int:
    """List inventories."""
    with _services(args) as s:
        inventories = list(s.store.list_inventories())
    lines = [f"{'NAME':<40} {'KIND':<10} CREATED"] + [
        f"{i.name:<40} {i.kind:<10} {i.created_at.isoformat()}" for i in inventories
    ]
    return _print(args, [_inventory_json(i) for i in inventories], "\n".join(lines))


def cmd_get(args: argparse.Namespace) -> int:
    """Show entries, or one entry."""
    with _services(args) as s:
        if s.store.get_inventory(args.name) is None:
            raise CLIError(f"no inventory {args.name!r}")
        if args.key is not None:
            entry = s.store.get_inventory_entry(args.name, args.key)
            if entry is None:
                raise CLIError(f"no entry {args.key!r} in inventory {args.name!r}")
            return _print(args, entry, json.dumps(entry, indent=2, ensure_ascii=False))
        page = list(s.store.list_inventory_entries(args.name, after=args.after, limit=args.limit))
    lines = [f"{key}\t{json.dumps(entry, ensure_ascii=False, sort_keys=True)}" for key, entry in page]
    return _print(args, {"entries": [{"key": k, "entry": e} for k, e in page]}, "\n".join(lines))


def cmd_set(args: argparse.Namespace) -> int:
    """Set one entry."""
    try:
        entry = loads_strict(args.entry.encode("utf-8", "surrogatepass"))
    except (StrictJSONError, ValueError):
        raise CLIError("the entry is not valid JSON") from None
    if not isinstance(entry, dict):
        raise CLIError("the entry must be a JSON object")
    with _services(args) as s:
        changes_for(s, "cli").set(args.name, args.key, entry)
    return _print(args, {"inventory": args.name, "key": args.key}, f"set {args.key} in {args.name}")


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete an inventory or one entry."""
    with _services(args) as s:
        changes_for(s, "cli").delete(args.name, args.key)
    what = f"entry {args.key} of inventory {args.name}" if args.key is not None else f"inventory {args.name}"
    return _print(args, {"deleted": {"inventory": args.name, "key": args.key}}, f"deleted {what}")
