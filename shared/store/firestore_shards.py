"""Shards for Firestore's time-ordered indexes, and the merge that reads across them.

Why: Firestore documents about 500 writes/s as the ceiling for a collection
whose index holds a monotonically rising value (a time, or a composite index
whose prefix is constant, such as one `authority_id`, followed by a time):
every new entry lands on the same tablet at the end of the index. At 5,000
certificates/s the (authority_id, issued_at) index would be ten times over.
Each document carrying an indexed time therefore gets a small integer
`shard`, derived from its document id, and every time-ordered composite index
leads with it: the index becomes N interleaved ranges, each rising at 1/N of
the rate. A query that needs time order asks every shard for its first
`limit` rows after the cursor and merges them here (`merge_pages`): the
result equals the unsharded query's page, because each shard's page holds
every row of that shard that can be among the first `limit` overall.

The shard is a digest of the document id rather than, say, the serial mod N,
so it is spread evenly whatever the id looks like (serials, event ids, claim
digests) and an operator may raise N later: documents keep their shard, and
the fan-out over range(N) still reaches every value below the old N.
Lowering N strands documents whose shard is at or above the new N until
`FirestoreStore.backfill_shards` rewrites them (docs/scale.md).

Nothing here imports the Firestore SDK; `heapq.merge` does the merging.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# Firestore's guidance: ~500 writes/s per monotonic index range. 16 shards keep
# 5,000/s at ~313/s a range, with room for bursts; settings and Terraform set it.
DEFAULT_SHARDS = 16
MAX_SHARDS = 64
FIELD = "shard"


def check_shards(shards: int) -> int:
    """Validate a shard count (1..MAX_SHARDS); 1 is the unsharded layout's query shape."""
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"firestore shards must be an integer from 1 to {MAX_SHARDS}")
    return shards


def shard_of(doc_id: str, shards: int) -> int:
    """The shard of the document `doc_id` among `shards` (stable across processes and releases)."""
    digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % shards


def merge_pages(pages: Iterable[Sequence[T]], *, key: Callable[[T], Any], limit: int) -> list[T]:
    """Merge per-shard pages, each already in `key` order, into the first `limit` rows overall."""
    out: list[T] = []
    for row in heapq.merge(*pages, key=key):
        if len(out) >= limit:
            break
        out.append(row)
    return out
