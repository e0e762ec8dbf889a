"""The Firestore document layout, without a Firestore: ids, claim digests, event fields."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys

import pytest

from shared.model import Event
from shared.store import firestore_docs as docs

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)

ODD_IDS = ["", ".", "..", "...", "__x__", "__", "_x_", "/", "a/b", "~", "~2F", "~7E", "~00", "~00.", "ü", "x" * 1600]


@pytest.mark.parametrize("raw", ODD_IDS)
def test_doc_ids_are_valid_for_firestore(raw: str) -> None:
    stored = docs.doc_id(raw)
    assert stored not in ("", ".", "..")
    assert "/" not in stored
    assert not re.fullmatch(r"__.*__", stored)
    assert len(stored.encode()) <= 1500


def test_doc_ids_are_injective_and_plain_ids_unchanged() -> None:
    stored = [docs.doc_id(r) for r in [*ODD_IDS, "x" * 1601]]
    assert len(set(stored)) == len(stored)
    for plain in ["329873284789234789234", "ep-01", "0b1e-uuid", "a.b", "a:b"]:
        assert docs.doc_id(plain) == plain


def test_claim_ids_separate_namespace_and_key() -> None:
    assert docs.claim_id("ab", "c") != docs.claim_id("a", "bc")
    assert docs.claim_id("jti", "k") == docs.claim_id("jti", "k")
    assert len(docs.claim_id("n", "k" * 10_000)) == 64


def _event(event_id: str, time: dt.datetime) -> Event:
    return Event(id=event_id, type="t", source="s", subject="x", time=time, data={"l": [[1], [2]]})


def test_event_fields_round_trip_with_first_and_last_times() -> None:
    events = [_event("b", T0 + dt.timedelta(hours=2)), _event("a", T0)]
    fields = docs.events_fields(docs.encode_events(events))
    assert fields["ev_first"] == "2025-01-01T12:00:00.000000Z"
    assert fields["ev_last"] == "2025-01-01T14:00:00.000000Z"
    assert isinstance(fields["ev"], str)  # JSON text: Firestore cannot hold nested arrays
    assert docs.events_from_fields(fields) == events
    assert docs.events_fields([]) == {}
    assert docs.events_from_fields({}) == []


def test_bad_event_data_raises_before_anything_is_built() -> None:
    bad = Event(id="x", type="t", source="s", subject="x", time=T0, data={"o": object()})
    with pytest.raises(ValueError):
        docs.encode_events([_event("a", T0), bad])


def test_merge_events_orders_filters_and_deduplicates() -> None:
    a, b, c = _event("a", T0), _event("b", T0), _event("c", T0 - dt.timedelta(seconds=1))
    dup = _event("a", T0 + dt.timedelta(hours=5))
    assert docs.merge_events([b, a, c, dup], since=None, limit=10) == [c, a, b]
    assert docs.merge_events([b, a, c], since=T0, limit=1) == [a]


def test_document_fields_index_only_top_level_strings() -> None:
    fields = docs.document_fields({"s": "v", "n": 5, "m": {"s": "x"}, "long": "L" * 500}, 3)
    assert fields["v"] == 3
    assert set(fields["idx"]) == {"fs", "flong"}
    assert fields["idx"]["flong"] != "L" * 500  # long values are indexed by digest
    assert docs.document_from_fields(fields) == ({"s": "v", "n": 5, "m": {"s": "x"}, "long": "L" * 500}, 3)
    with pytest.raises(ValueError):
        docs.document_fields({"x": "y"}, 1, expires_at=dt.datetime(2025, 1, 1))


def test_importing_the_backend_does_not_import_the_sdk() -> None:
    code = (
        "import sys, shared.store.firestore, shared.events.pubsub, shared.retry;"
        "sdk = ('google.cloud.firestore', 'google.cloud.pubsub', 'google.api_core', 'grpc');"
        "bad = [m for m in sys.modules if m.startswith(sdk)];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
