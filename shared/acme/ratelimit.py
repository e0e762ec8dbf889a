"""Rate limits: newOrder per account (ACME-14), newAccount per client address (`rateLimited`, `Retry-After`).

A fixed one-minute window per account (or per client address), counted in a document that every
instance shares (create-if-absent, then compare-and-set increments), so the
limit holds across any number of function instances. The window document
expires with the window, for the sweep or a TTL policy to delete.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from shared.acme.nonces import PendingNonce
from shared.acme.problems import ACMEProblem
from shared.store.base import DocumentStore

COLLECTION = "acme_rate"
ACCOUNT_COLLECTION = "acme_account_rate"
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
    _count(docs, COLLECTION, account_id, limit=limit, now=now, nonce=nonce, what="new orders for this account")


def client_address(peer: str, forwarded_for: str, hops: int) -> str:
    """The client's address: the peer's, or with `hops` trusted proxies in front (Cloud Functions: 1), the
    X-Forwarded-For entry the farthest of them appended. Entries before that are the client's to choose,
    so they are never used; with no proxy configured the header is ignored (anyone may send it)."""
    if hops <= 0:
        return peer
    entries = [e.strip() for e in forwarded_for.split(",")]
    return entries[-hops] if len(entries) >= hops and entries[-hops] else peer


def client_key(address: str) -> str:
    """What one client is, for a per-address limit: an IPv4 address, or an IPv6 /64 (one site's prefix)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def check_new_account(docs: DocumentStore, *, provisioner: str, address: str, limit: int, now: dt.datetime) -> None:
    """Count one account creation from `address` in the current window.

    Every account may ask for validations, i.e. fetches from the CA to any host
    it names, so unlimited accounts from one client would be unlimited fetches.

    Raises:
        ACMEProblem: `rateLimited` (429) with Retry-After once `limit` accounts were made this minute.
    """
    key = f"{provisioner}:{client_key(address)}"
    _count(docs, ACCOUNT_COLLECTION, key, limit=limit, now=now, nonce=None, what="new accounts from this address")


def _count(
    docs: DocumentStore,
    collection: str,
    key: str,
    *,
    limit: int,
    now: dt.datetime,
    nonce: PendingNonce | None,
    what: str,
) -> None:
    """Count one event under `key` in its one-minute window; refuse past `limit`."""
    if limit <= 0:
        return
    window_start = now.replace(second=0, microsecond=0)
    doc_id = f"{key}:{int(window_start.timestamp())}"
    expires = window_start + 2 * WINDOW
    for _ in range(_MAX_ATTEMPTS):
        if nonce is not None:
            if nonce.create(docs, collection, doc_id, {"n": 1}, expires_at=expires):
                return
        elif docs.create_document(collection, doc_id, {"n": 1}, expires_at=expires):
            return
        found = docs.get_document(collection, doc_id)
        if found is None:
            continue
        data, version = found
        count = int(data.get("n", 0))
        if count >= limit:
            retry = max(1, int((window_start + WINDOW - now).total_seconds()) + 1)
            raise ACMEProblem(
                "rateLimited",
                f"too many {what}: at most {limit} per minute",
                headers={"Retry-After": str(retry)},
            )
        if nonce is not None:
            if nonce.update(docs, collection, doc_id, {"n": count + 1}, expected_version=version):
                return
        elif docs.update_document(collection, doc_id, {"n": count + 1}, expected_version=version):
            return
    raise ACMEProblem("rateLimited", f"too many concurrent {what}", headers={"Retry-After": "1"})
