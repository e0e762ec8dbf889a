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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import struct

from shared.acme.jws import b64d, b64e
from shared.acme.problems import ACMEProblem
from shared.clock import Clock
from shared.store.base import TokenLedger

NAMESPACE = "acme-nonce"
_MAC_LEN = 16


class NonceService:
    """Issues and redeems nonces."""

    def __init__(
        self,
        *,
        key: bytes,
        ledger: TokenLedger,
        clock: Clock,
        lifetime: dt.timedelta = dt.timedelta(minutes=30),
    ) -> None:
        if len(key) < 16:
            raise ValueError("nonce key must be at least 16 bytes")
        self._key = key
        self._ledger = ledger
        self._clock = clock
        self._lifetime = lifetime

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_LEN]

    def issue(self) -> str:
        """A fresh nonce (no store access)."""
        ts = int(self._clock.now().timestamp())
        body = secrets.token_bytes(16) + struct.pack(">Q", ts)
        return b64e(body + self._mac(body))

    def redeem(self, nonce: object) -> None:
        """Accept `nonce` once; raise badNonce otherwise."""
        if not isinstance(nonce, str) or not nonce:
            raise ACMEProblem("badNonce", "JWS has no nonce")
        try:
            raw = b64d(nonce, "nonce")
        except ACMEProblem as exc:
            raise ACMEProblem("badNonce", "nonce is not valid") from exc
        if len(raw) != 24 + _MAC_LEN:
            raise ACMEProblem("badNonce", "nonce is not valid")
        body, mac = raw[:24], raw[24:]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise ACMEProblem("badNonce", "nonce is not valid")
        issued = dt.datetime.fromtimestamp(struct.unpack(">Q", body[16:])[0], dt.UTC)
        expires = issued + self._lifetime
        if self._clock.now() >= expires:
            raise ACMEProblem("badNonce", "nonce has expired")
        if not self._ledger.claim(NAMESPACE, nonce, expires):
            raise ACMEProblem("badNonce", "nonce has already been used")
