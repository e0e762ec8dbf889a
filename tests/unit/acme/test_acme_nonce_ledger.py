"""Nonces spent in memory shared by `cirrus up`'s worker processes (`SharedNonceLedger`).

Each nonce is accepted once, across processes, with no store write; a nonce of
another instance, of the store-claim format, or too old for its ring is refused.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from shared.acme import nonce_ledger
from shared.acme.nonce_ledger import SharedNonceLedger
from shared.acme.nonces import NAMESPACE, NonceService
from shared.acme.problems import ACMEProblem
from shared.clock import FixedClock
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import ACMETestClient, TestCA, build_server, provisioner, wsgi_app

KEY = b"k" * 32


def _service(store: MemoryStore, ledger: SharedNonceLedger | None, clock: FixedClock) -> NonceService:
    return NonceService(key=KEY, ledger=store, clock=clock, shared=ledger)


def test_a_nonce_is_spent_once_and_never_in_the_store() -> None:
    store, clock = MemoryStore(), FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    nonces = _service(store, SharedNonceLedger(2), clock)
    first, second = nonces.issue(), nonces.issue()
    assert first != second
    nonces.redeem(first)
    with pytest.raises(ACMEProblem) as exc:
        nonces.redeem(first)
    assert exc.value.kind == "badNonce"
    nonces.redeem(second)
    # Nothing was claimed in the store: claiming the same key there now succeeds.
    assert store.claim(NAMESPACE, first, clock.now() + dt.timedelta(hours=1))


def test_foreign_stale_and_store_format_nonces_are_refused() -> None:
    store, clock = MemoryStore(), FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    ours = _service(store, SharedNonceLedger(1), clock)
    other_instance = _service(store, SharedNonceLedger(1), clock)  # same key, another cirrus up
    store_format = _service(store, None, clock)
    for nonce in (other_instance.issue(), store_format.issue()):
        with pytest.raises(ACMEProblem) as exc:
            ours.redeem(nonce)
        assert exc.value.kind == "badNonce"
    old = ours.issue()
    clock.advance(dt.timedelta(minutes=31))
    with pytest.raises(ACMEProblem, match="expired"):
        ours.redeem(old)


def test_a_nonce_older_than_its_ring_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nonce_ledger, "RING", 16)
    monkeypatch.setattr(nonce_ledger, "_RING_BYTES", 2)
    ledger = SharedNonceLedger(1)
    slot, first = ledger.issue()
    for _ in range(15):
        ledger.issue()
    assert ledger.spend(slot, first)  # 15 newer: still in the ring
    slot, second = ledger.issue()
    for _ in range(16):
        ledger.issue()
    assert not ledger.spend(slot, second)  # its bit now belongs to a newer nonce
    assert not ledger.spend(slot, 10**9)  # never issued
    assert not ledger.spend(5, 1)  # no such slot


def test_worker_processes_share_the_spent_bits_and_each_nonce_is_accepted_once() -> None:
    """Workers fork after the ledger exists; every worker tries to spend every nonce: one wins each."""
    ledger = SharedNonceLedger(4)  # this process and three workers
    issued = [ledger.issue() for _ in range(3000)]
    pipes = []
    for _ in range(3):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # a worker: spend every nonce, report which it won
            os.close(r)
            try:
                won = sum(1 for slot, counter in issued if ledger.spend(slot, counter))
                own = ledger.issue()  # a worker's first nonce takes a slot of its own
                os.write(w, f"{won} {own[0]}".encode())
            except BaseException as exc:  # report it: the parent's assertion names it
                os.write(w, f"error {exc!r}".encode())
            finally:
                os._exit(0)
        os.close(w)
        pipes.append((pid, r))
    results = []
    for pid, r in pipes:
        os.waitpid(pid, 0)
        results.append(os.read(r, 100).decode().split())
        os.close(r)
    assert all(won.isdigit() for won, _ in results), results
    assert sum(int(won) for won, _ in results) == 3000
    assert len({slot for _, slot in results} | {str(issued[0][0])}) <= 4


def test_acme_requests_spend_shared_nonces_and_a_replay_is_bad_nonce(responder) -> None:  # type: ignore[no-untyped-def]
    store = MemoryStore()
    provs = [provisioner("acme", http01Port=responder.port)]
    server = build_server(store, TestCA(store), provs, nonce_ledger=SharedNonceLedger(1))  # as `cirrus up` wires it
    client = ACMETestClient(wsgi_app(server))
    assert client.register().status_code == 201
    nonce = client.nonce()
    r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}, nonce=nonce)
    assert r.status_code == 201
    replay = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}, nonce=nonce)
    assert replay.status_code == 400 and replay.get_json()["type"] == "urn:ietf:params:acme:error:badNonce"
    assert store.claim(NAMESPACE, nonce, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))  # never claimed in the store
