"""Spent ACME nonces in memory shared by the worker processes of one `cirrus up`.

Why: every ACME request spends a nonce, and spending it in the store is a
write transaction of its own (about a tenth of the server's time per order).
The worker processes of one `cirrus up` run on one machine, so they can
share a few megabytes of memory instead. The Cloud Functions, which share
nothing but the store, keep claiming nonces in the store (`NonceService`
without a ledger).

How: a nonce issued here carries this ledger's instance id, the issuing
worker's slot and that worker's counter (all under the nonce's MAC). Each
slot owns a ring of `RING` bits in one anonymous shared mapping, created
before the workers fork, and a single process-shared lock guards it.
Issuing counter `c` clears bit `c mod RING` first; spending tests and sets
it. A bit is reused only after `RING` newer nonces from the same worker, and
a nonce that far behind its worker's counter is refused as too old, so a
nonce is never accepted twice. A nonce of another instance (another `cirrus
up`, or this one before a restart) is refused: its spent bits live elsewhere.
Clients answer that `badNonce` by retrying with the fresh nonce it carries.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import secrets
import struct

#: Where `cirrus up` leaves its ledger in `Services.extras` (absent elsewhere: nonces are spent in the store).
NONCE_LEDGER_EXTRA = "acme.nonce_ledger"

#: Bits per worker: 8 Mi nonces (1 MiB), over an hour of one worker's nonces at full speed,
#: which is longer than a nonce lives anyway.
RING = 1 << 23
_SLOT_HEADER = 16  # pid (8 bytes, 0 = free) and counter (8 bytes)
_RING_BYTES = RING // 8


class SharedNonceLedger:
    """Issue-order counters and spent bits for `slots` worker processes (create it before they fork)."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a nonce ledger needs at least one slot")
        self.instance = secrets.token_bytes(8)
        self._slots = slots
        self._stride = _SLOT_HEADER + _RING_BYTES
        self._map = mmap.mmap(-1, slots * self._stride)  # anonymous and MAP_SHARED: forked workers see one copy
        self._lock = multiprocessing.get_context("fork").Lock()
        self._slot: int | None = None
        self._slot_pid = 0

    def _my_slot(self) -> int:
        """This process's slot, taken on first use (the caller holds the lock)."""
        pid = os.getpid()
        if self._slot is not None and self._slot_pid == pid:
            return self._slot
        for slot in range(self._slots):
            base = slot * self._stride
            (owner,) = struct.unpack_from(">Q", self._map, base)
            if owner in (0, pid) or not _alive(owner):
                if owner != pid:  # a new owner starts after the old one's counters, so none repeat
                    struct.pack_into(">Q", self._map, base, pid)
                self._slot, self._slot_pid = slot, pid
                return slot
        raise RuntimeError("more processes issue nonces than the ledger has slots")

    def issue(self) -> tuple[int, int]:
        """`(slot, counter)` for a new nonce of this process."""
        with self._lock:
            slot = self._my_slot()
            base = slot * self._stride
            (counter,) = struct.unpack_from(">Q", self._map, base + 8)
            counter += 1
            struct.pack_into(">Q", self._map, base + 8, counter)
            bit = counter % RING
            at = base + _SLOT_HEADER + bit // 8
            self._map[at] &= ~(1 << (bit % 8)) & 0xFF
            return slot, counter

    def spend(self, slot: int, counter: int) -> bool:
        """Mark `(slot, counter)` spent; False if it was spent before, never issued, or too old to tell."""
        if not 0 <= slot < self._slots or counter < 1:
            return False
        with self._lock:
            base = slot * self._stride
            (latest,) = struct.unpack_from(">Q", self._map, base + 8)
            if counter > latest or latest - counter >= RING:
                return False
            bit = counter % RING
            at = base + _SLOT_HEADER + bit // 8
            mask = 1 << (bit % 8)
            if self._map[at] & mask:
                return False
            self._map[at] |= mask
            return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
