"""Revoke tokens on every store backend: issued, listed, withdrawn (then refused), also when
instances race to withdraw the same token.

Withdrawal is a compare-and-set on the token's document (no delete), and listing finds the tokens
by their `kind` field: both must behave the same on memory, SQLite and Firestore (emulator).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from test_store_contract import run_threads

from shared.clock import FixedClock
from shared.errors import NotFound, Unauthorized
from shared.linked.revoke_tokens import (
    authenticate_revoke_token,
    issue_revoke_token,
    list_revoke_tokens,
    withdraw_revoke_token,
)
from shared.store.base import Store
from shared.store.open import open_store

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_tokens_are_listed_and_a_withdrawn_one_is_refused(store: Store) -> None:
    central = issue_revoke_token(store, label="central", now=T0)
    spare = issue_revoke_token(store, label="spare", now=T0 + dt.timedelta(minutes=1))
    central_id, spare_id = central.split(".")[0], spare.split(".")[0]
    store.create_document("revoke_tokens_other", "x", {"kind": "revokeToken"})  # another collection: not listed

    listed = {t.id: t for t in list_revoke_tokens(store)}
    assert set(listed) == {central_id, spare_id}
    assert listed[central_id].label == "central" and listed[central_id].withdrawn_at is None
    assert "tokenHash" not in listed[central_id].as_json()
    assert authenticate_revoke_token(store, f"Bearer {central}") == central_id

    gone = withdraw_revoke_token(store, central_id, now=T0 + dt.timedelta(hours=1))
    assert gone.withdrawn_at == (T0 + dt.timedelta(hours=1)).isoformat()
    with pytest.raises(Unauthorized, match="invalid revoke token"):
        authenticate_revoke_token(store, f"Bearer {central}")
    assert authenticate_revoke_token(store, f"Bearer {spare}") == spare_id  # the other one still works
    # Withdrawing again changes nothing (the first time is kept).
    again = withdraw_revoke_token(store, central_id, now=T0 + dt.timedelta(hours=2))
    assert again.withdrawn_at == gone.withdrawn_at
    listed = {t.id: t for t in list_revoke_tokens(store)}
    assert listed[central_id].withdrawn_at == gone.withdrawn_at and listed[spare_id].withdrawn_at is None

    for unknown in ("rvk-000000000000", "rvk-nothex", "central", ""):
        with pytest.raises(NotFound):
            withdraw_revoke_token(store, unknown, now=T0)


def test_racing_withdrawals_keep_one_time(shared_store_url: str, tmp_path: Path) -> None:
    clock = FixedClock(T0)
    stores = [open_store(shared_store_url, clock=clock) for _ in range(4)]
    try:
        token = issue_revoke_token(stores[0], label="central", now=T0)
        token_id = token.split(".")[0]
        results = run_threads(len(stores), lambda i: withdraw_revoke_token(
            stores[i], token_id, now=T0 + dt.timedelta(seconds=i + 1)))  # fmt: skip
        times = {r.withdrawn_at for r in results}
        assert len(times) == 1, times  # every instance reports the one withdrawal that was written
        for s in stores:
            with pytest.raises(Unauthorized):
                authenticate_revoke_token(s, f"Bearer {token}")
    finally:
        for s in stores:
            s.close()
