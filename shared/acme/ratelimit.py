"""Per-account newOrder rate limit (ACME-14: `rateLimited` with `Retry-After`).

A fixed one-minute window per account, counted in a document that every
instance shares (create-if-absent, then compare-and-set increments), so the
limit holds across any number of function instances. The window document
expires with the window, for the sweep or a TTL policy to delete.
"""

from __future__ import annotations

import datetime as dt

from shared.acme.nonces import PendingNonce
from shared.acme.problems import ACMEProblem
from shared.store.base import DocumentStore

COLLECTION = "acme_rate"
WINDOW = dt.timedelta(minutes=1)
_MAX_ATTEMPTS = 8


def check_new_order(
    docs: DocumentStore, *, account_id: str, limit: int, now: dt.datetime, nonce: PendingNonce | None = None
) -> None:
    """Count one newOrder for the account in the current window.

    `nonce` (the request's, not yet spent) is spent by the counting write:
    the request's first write, so a replayed newOrder is refused before it counts.

    Raises:
        ACMEProblem: `rateLimited` (429) with Retry-After once `limit` orders were made this minute.
    """
    if limit <= 0:
        return
    window_start = now.replace(second=0, microsecond=0)
    doc_id = f"{account_id}:{int(window_start.timestamp())}"
    expires = window_start + 2 * WINDOW
    for _ in range(_MAX_ATTEMPTS):
        if nonce is not None:
            if nonce.create(docs, COLLECTION, doc_id, {"n": 1}, expires_at=expires):
                return
        elif docs.create_document(COLLECTION, doc_id, {"n": 1}, expires_at=expires):
            return
        found = docs.get_document(COLLECTION, doc_id)
        if found is None:
            continue
        data, version = found
        count = int(data.get("n", 0))
        if count >= limit:
            retry = max(1, int((window_start + WINDOW - now).total_seconds()) + 1)
            raise ACMEProblem(
                "rateLimited",
                f"too many new orders for this account: at most {limit} per minute",
                headers={"Retry-After": str(retry)},
            )
        if nonce is not None:
            if nonce.update(docs, COLLECTION, doc_id, {"n": count + 1}, expected_version=version):
                return
        elif docs.update_document(COLLECTION, doc_id, {"n": count + 1}, expected_version=version):
            return
    raise ACMEProblem("rateLimited", "too many concurrent new orders for this account", headers={"Retry-After": "1"})
