"""Replay nonces (RFC 8555 s.6.5) that work across any number of instances.

Design: a nonce is `random(16) || issued_at(8) || HMAC-SHA256(key, both)[:16]`,
base64url. Issuing costs no store write, which matters because every ACME
response carries a fresh nonce and most are never used. On use we first check
the MAC and age locally (a forged, foreign or stale nonce is refused without
touching the store), then claim it in the shared `TokenLedger` with
create-if-absent: the single atomic write is what makes it single-use across
instances, and the claim expires with the nonce so the ledger stays small.
Every instance that shares the HMAC key (from config) accepts every other's
nonces. Rotating the key invalidates outstanding nonces, which clients handle
as an ordinary `badNonce` retry.

Behind `cirrus up`, whose workers share one machine, a `SharedNonceLedger`
(`nonce_ledger.py`) replaces the store claim: the nonce then also carries the
ledger's instance, the issuing worker's slot and its counter (under the MAC),
and spending it sets a bit in shared memory instead of writing a row.

A request whose effect is one document write (newOrder, finalize) may spend
its nonce in that same write instead (`PendingNonce`): one transaction
instead of two, and still all-or-nothing, because the store refuses the write
when the claim exists. The server spends a pending nonce the request did not
write with after the handler returns or fails, so every request, answered or
refused, still uses up its nonce, and a replay is still answered `badNonce`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from typing import Any

from shared.acme.jws import b64d, b64e
from shared.acme.nonce_ledger import SharedNonceLedger
from shared.acme.problems import ACMEProblem
from shared.clock import Clock
from shared.errors import TokenAlreadyUsed
from shared.model import TokenClaim
from shared.store.base import DocumentStore, TokenLedger

NAMESPACE = "acme-nonce"
_MAC_LEN = 16
_BODY = 24  # random(16) || issued_at(8)
_SHARED_BODY = 32  # random(8) || issued_at(8) || instance(8) || slot(2) || counter(6)


class NonceService:
    """Issues and redeems nonces."""

    def __init__(
        self,
        *,
        key: bytes,
        ledger: TokenLedger,
        clock: Clock,
        lifetime: dt.timedelta = dt.timedelta(minutes=30),
        shared: SharedNonceLedger | None = None,
    ) -> None:
        if len(key) < 16:
            raise ValueError("nonce key must be at least 16 bytes")
        self._key = key
        self._ledger = ledger
        self._clock = clock
        self._lifetime_s = int(lifetime.total_seconds())
        self._shared = shared

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_LEN]

    def issue(self) -> str:
        """A fresh nonce (no store access)."""
        ts = int(self._clock.now().timestamp())
        if self._shared is None:
            body = secrets.token_bytes(16) + struct.pack(">Q", ts)
        else:
            slot, counter = self._shared.issue()
            body = (
                secrets.token_bytes(8)
                + struct.pack(">Q", ts)
                + self._shared.instance
                + struct.pack(">H", slot)
                + counter.to_bytes(6, "big")
            )
        return b64e(body + self._mac(body))

    def redeem(self, nonce: object) -> None:
        """Accept `nonce` once; raise badNonce otherwise."""
        self.spend(self.check(nonce))

    def spend(self, pending: PendingNonce) -> None:
        """Claim a checked nonce in the ledger unless a document write already did; badNonce if it was used."""
        if pending.spent:
            return
        if pending.shared is not None:
            pending.spend_shared()
            return
        claim = pending.claim
        if not self._ledger.claim(claim.namespace, claim.key, claim.expires_at):
            raise ACMEProblem("badNonce", "nonce has already been used")
        pending.spent = True

    def check(self, nonce: object) -> PendingNonce:
        """The store-free checks (form, MAC, age): a nonce that passes still has to be spent."""
        if not isinstance(nonce, str) or not nonce:
            raise ACMEProblem("badNonce", "JWS has no nonce")
        try:
            raw = b64d(nonce, "nonce")
        except ACMEProblem as exc:
            raise ACMEProblem("badNonce", "nonce is not valid") from exc
        size = _BODY if self._shared is None else _SHARED_BODY
        if len(raw) != size + _MAC_LEN:
            raise ACMEProblem("badNonce", "nonce is not valid")
        body, mac = raw[:size], raw[size:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise ACMEProblem("badNonce", "nonce is not valid")
        at = 16 if self._shared is None else 8
        now = self._clock.now()
        expires_ts = struct.unpack(">Q", body[at : at + 8])[0] + self._lifetime_s
        if now.timestamp() >= expires_ts:
            raise ACMEProblem("badNonce", "nonce has expired")
        expires = dt.datetime.fromtimestamp(expires_ts, dt.UTC)
        pending = PendingNonce(TokenClaim(NAMESPACE, nonce, expires))
        if self._shared is not None:
            if body[16:24] != self._shared.instance:  # spent bits of another instance live elsewhere
                raise ACMEProblem("badNonce", "nonce was issued by another server instance")
            pending.shared = self._shared
            pending.slot = struct.unpack(">H", body[24:26])[0]
            pending.counter = int.from_bytes(body[26:32], "big")
        return pending


@dataclass(slots=True)
class PendingNonce:
    """A nonce that passed its local checks, to be spent exactly once: by a document write or by `spend`."""

    claim: TokenClaim
    spent: bool = False
    shared: SharedNonceLedger | None = None  # spent in shared memory (with slot and counter), not in the store
    slot: int = 0
    counter: int = 0

    def spend_shared(self) -> None:
        """Spend a nonce of the shared ledger; badNonce if it was spent before (or is too old to tell)."""
        assert self.shared is not None
        if not self.shared.spend(self.slot, self.counter):
            raise ACMEProblem("badNonce", "nonce has already been used")
        self.spent = True

    def create(
        self, docs: DocumentStore, collection: str, doc_id: str, data: dict[str, Any], **kw: Any
    ) -> bool:
        """`create_document`, spending the nonce in the same write if it is still unspent."""
        if not self.spent and self.shared is not None:
            self.spend_shared()  # before the write: a replay writes nothing
        if self.spent:
            return docs.create_document(collection, doc_id, data, **kw)
        try:
            created = docs.create_document_claiming(collection, doc_id, data, claim=self.claim, **kw)
        except TokenAlreadyUsed as exc:
            raise ACMEProblem("badNonce", "nonce has already been used") from exc
        self.spent = created
        return created

    def update(
        self, docs: DocumentStore, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int
    ) -> bool:
        """`update_document`, spending the nonce in the same write if it is still unspent."""
        if not self.spent and self.shared is not None:
            self.spend_shared()  # before the write: a replay writes nothing
        if self.spent:
            return docs.update_document(collection, doc_id, data, expected_version=expected_version)
        try:
            updated = docs.update_document_claiming(
                collection, doc_id, data, expected_version=expected_version, claim=self.claim
            )
        except TokenAlreadyUsed as exc:
            raise ACMEProblem("badNonce", "nonce has already been used") from exc
        self.spent = updated
        return updated
