"""Endpoint ids: UUIDv7 for renewal-enabled signs (time-ordered), a digest for subject groups."""

from __future__ import annotations

import datetime as dt
import uuid

from shared.endpoints import endpoint_for_sign, new_endpoint_id, subject_endpoint_id

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def test_new_endpoint_id_is_a_uuid7_carrying_the_millisecond() -> None:
    eid = new_endpoint_id(T0)
    assert eid.startswith("ep-") and len(eid) == 35
    u = uuid.UUID(eid[3:])
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert u.int >> 80 == int(T0.timestamp() * 1000)


def test_new_endpoint_ids_rise_with_time_and_differ_within_a_millisecond() -> None:
    later = [new_endpoint_id(T0 + dt.timedelta(milliseconds=i)) for i in range(50)]
    assert later == sorted(later)
    same = {new_endpoint_id(T0) for _ in range(1000)}
    assert len(same) == 1000


def test_endpoint_for_sign_groups_by_subject_only_when_renewal_is_disabled() -> None:
    args = {"authority_id": "a", "provisioner_id": "p", "subject_key": "k", "name": "n", "now": T0}
    assert endpoint_for_sign(renewal_enabled=False, **args).id == subject_endpoint_id("a", "k")  # type: ignore[arg-type]
    fresh = endpoint_for_sign(renewal_enabled=True, **args)  # type: ignore[arg-type]
    assert uuid.UUID(fresh.id[3:]).version == 7
    assert fresh.id != endpoint_for_sign(renewal_enabled=True, **args).id  # type: ignore[arg-type]


def test_each_store_picks_its_endpoint_id_order() -> None:
    """Firestore asks for random ids (no rising document ids); SQLite and memory keep UUIDv7's page order."""
    from shared.clock import FixedClock
    from shared.endpoints import endpoint_id_order
    from shared.store.firestore import FirestoreStore
    from shared.store.memory import MemoryStore

    assert endpoint_id_order(FirestoreStore) == "random"  # the class attribute; no client needed
    assert endpoint_id_order(MemoryStore(clock=FixedClock(T0))) == "time"
    assert endpoint_id_order(object()) == "time"


def test_random_endpoint_ids_do_not_follow_time() -> None:
    args = {"authority_id": "a", "provisioner_id": "p", "subject_key": "k", "name": "n", "now": T0}
    ids = [endpoint_for_sign(renewal_enabled=True, id_order="random", **args).id for _ in range(200)]  # type: ignore[arg-type]
    assert len(set(ids)) == 200 and all(i.startswith("ep-") and len(i) == 35 for i in ids)
    assert uuid.UUID(ids[0][3:]).version == 4
    assert ids != sorted(ids)  # 200 random ids in rising order: 1 in 200!
    grouped = endpoint_for_sign(renewal_enabled=False, id_order="random", **args)  # type: ignore[arg-type]
    assert grouped.id == subject_endpoint_id("a", "k")
