"""`cirrus store backfill-shards`: give Firestore documents written before index shards their `shard`.

Issue 18 made every time-ordered Firestore index lead with a `shard` field; documents
written earlier lack it and the sharded queries (the serial index, CRLs, expiry alerts,
the event log) do not see them until this has run once (docs/scale.md). Other stores
have nothing to backfill.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol, runtime_checkable

from shared.cli.errors import CLIError
from shared.clock import SystemClock
from shared.store.open import open_store


@runtime_checkable
class ShardBackfill(Protocol):
    """A store whose indexes are sharded."""

    def backfill_shards(self) -> int:
        """Rewrite the documents whose `shard` is missing or stale; return how many."""
        ...


def register(sub: Any) -> None:
    """Add `cirrus store`."""
    p = sub.add_parser("store", help="store maintenance")
    ssub = p.add_subparsers(dest="store_command", metavar="ACTION")
    bp = ssub.add_parser("backfill-shards", help="give pre-shard Firestore documents their shard field")
    bp.add_argument("--store", required=True, help="store URL, e.g. firestore:projects/P/databases/D?shards=16")
    bp.set_defaults(func=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    """Backfill the shard field and say how many documents changed."""
    store = open_store(args.store, clock=SystemClock())
    try:
        if not isinstance(store, ShardBackfill):
            raise CLIError(f"{args.store.partition(':')[0]}: store has no index shards; nothing to backfill")
        changed = store.backfill_shards()
    finally:
        store.close()
    print(f"backfilled {changed} document(s)")
    return 0
