"""The storage contract: every behaviour of `shared.store.base`, on every backend.

Each test takes the `store` fixture and so runs once per backend registered in
`conftest.STORE_FACTORIES`. The multi-process tests take `shared_store_url`
instead and run on every backend several processes can share.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

import _store_workers
import pytest

from shared.clock import FixedClock
from shared.errors import AlreadyRevoked, Conflict
from shared.model import (
    CertificateKind,
    CertificateRecord,
    Endpoint,
    Event,
    ProvisionerRef,
    Revocation,
)
from shared.store.base import Store

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
PROV = ProvisionerRef(id="prov-1", name="admin@example.com", type="JWK")
NAIVE = dt.datetime(2025, 1, 1, 12, 0)  # deliberately naive


def cert(
    serial: str,
    *,
    endpoint_id: str = "ep-1",
    issued_at: dt.datetime = T0,
    authority_id: str = "auth-1",
    **changes: Any,
) -> CertificateRecord:
    """A certificate record with distinct, non-default values in every field."""
    record = CertificateRecord(
        serial=serial,
        authority_id=authority_id,
        kind=CertificateKind.X509,
        der=b"\x30\x82\x01\x0a" + serial.encode() + bytes(range(256)),
        not_before=issued_at - dt.timedelta(minutes=1),
        not_after=issued_at + DAY,
        provisioner=PROV,
        endpoint_id=endpoint_id,
        subject_key="host.example.com",
        common_name="host.example.com",
        sans=("host.example.com", "10.0.0.1"),
        issued_at=issued_at,
        renewed_from="1234",
        operation="renew",
    )
    return dataclasses.replace(record, **changes)


def endpoint(endpoint_id: str, *, authority_id: str = "auth-1", name: str = "host") -> Endpoint:
    """An endpoint record."""
    return Endpoint(
        id=endpoint_id,
        authority_id=authority_id,
        provisioner_id="prov-1",
        subject_key=f"{name}.example.com",
        name=name,
        created_at=T0,
    )


def event(event_id: str, *, time: dt.datetime = T0, data: dict[str, Any] | None = None) -> Event:
    """An event record."""
    return Event(
        id=event_id,
        type="dev.cirrus.certificate.issued",
        source="cirrus-ca",
        subject=f"subject-{event_id}",
        time=time,
        data=data if data is not None else {"serial": event_id, "n": 1, "ok": True},
    )


def revocation(
    serial: str, *, authority_id: str = "auth-1", not_after: dt.datetime = T0 + DAY
) -> Revocation:
    """A revocation record with non-default values."""
    return Revocation(
        serial=serial,
        authority_id=authority_id,
        revoked_at=T0,
        not_after=not_after,
        reason_code=1,
        reason="key compromise",
        provisioner_id="prov-1",
        mtls=True,
    )


def run_threads(n: int, body: Callable[[int], Any]) -> list[Any]:
    """Run `body(i)` in `n` threads released together; return their results."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = body(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


# ============================================================================ TokenLedger


def test_claim_once_then_never_again(store: Store) -> None:
    assert store.claim("jti", "abc", T0 + HOUR) is True
    assert store.claim("jti", "abc", T0 + HOUR) is False
    assert store.claim("jti", "abc", T0 + 2 * HOUR) is False


def test_claim_same_key_in_two_namespaces(store: Store) -> None:
    assert store.claim("jti", "k", T0 + HOUR) is True
    assert store.claim("nonce", "k", T0 + HOUR) is True
    assert store.claim("jti", "k", T0 + HOUR) is False
    assert store.claim("nonce", "k", T0 + HOUR) is False


def test_expired_claim_still_blocks_until_purged(store: Store, clock: FixedClock) -> None:
    assert store.claim("jti", "old", T0 + HOUR)
    assert store.claim("jti", "edge", T0 + 2 * HOUR)
    assert store.claim("jti", "new", T0 + 3 * HOUR)
    clock.advance(2 * HOUR)  # "old" has expired, "edge" expires exactly now
    assert store.claim("jti", "old", T0 + 5 * HOUR) is False
    assert store.purge_expired(clock.now()) == 1
    assert store.purge_expired(clock.now()) == 0
    assert store.claim("jti", "old", T0 + 5 * HOUR) is True
    assert store.claim("jti", "edge", T0 + 5 * HOUR) is False
    assert store.claim("jti", "new", T0 + 5 * HOUR) is False
    clock.advance(DAY)
    assert store.purge_expired(clock.now()) == 3


def test_claim_accepts_any_aware_timezone(store: Store) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert store.claim("jti", "tz", (T0 + HOUR).astimezone(plus2))
    assert store.purge_expired(T0 + HOUR - dt.timedelta(microseconds=1)) == 0
    assert store.purge_expired(T0 + HOUR + dt.timedelta(microseconds=1)) == 1


def test_naive_datetimes_are_rejected(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.claim("jti", "naive", NAIVE)
    with pytest.raises(ValueError):
        store.purge_expired(NAIVE)
    with pytest.raises(ValueError):
        store.record_issuance(cert("1", issued_at=NAIVE))
    with pytest.raises(ValueError):
        store.record_issuance(
            cert("2"), new_endpoint=dataclasses.replace(endpoint("e"), created_at=NAIVE)
        )
    with pytest.raises(ValueError):
        store.revoke(dataclasses.replace(revocation("3"), revoked_at=NAIVE))
    with pytest.raises(ValueError):
        store.list_revocations("auth-1", not_after_since=NAIVE)
    with pytest.raises(ValueError):
        store.append_events([event("e1", time=NAIVE)])
    with pytest.raises(ValueError):
        store.list_events(since=NAIVE)
    with pytest.raises(ValueError):
        store.create_document("c", "d", {}, expires_at=NAIVE)
    # Nothing was half-written by the rejected calls.
    assert store.claim("jti", "naive", T0) is True
    assert store.get_certificate("1") is None
    assert store.get_certificate("2") is None
    assert store.get_endpoint("e") is None
    assert store.get_revocation("3") is None
    assert store.list_events() == []
    assert store.get_document("c", "d") is None


# ============================================================================ issuance


def test_record_issuance_round_trips_every_field(store: Store) -> None:
    record = cert("329873284789234789234")
    store.record_issuance(record, new_endpoint=endpoint("ep-1"), events=[event("ev-1")])
    got = store.get_certificate("329873284789234789234")
    assert got == record
    assert got is not None
    assert got.issued_at.tzinfo is not None and got.issued_at.utcoffset() == dt.timedelta(0)
    assert isinstance(got.der, bytes) and isinstance(got.sans, tuple)
    assert store.get_endpoint("ep-1") == endpoint("ep-1")
    assert [e.id for e in store.list_events()] == ["ev-1"]
    assert store.get_certificate("404") is None


def test_record_issuance_without_endpoint_or_events(store: Store) -> None:
    record = cert("7", kind=CertificateKind.SSH, renewed_from=None, operation="sign", sans=())
    store.record_issuance(record)
    assert store.get_certificate("7") == record
    assert store.get_endpoint("ep-1") is None
    assert store.list_events() == []


def test_times_come_back_in_utc(store: Store) -> None:
    minus5 = dt.timezone(dt.timedelta(hours=-5))
    local = T0.astimezone(minus5)
    store.record_issuance(cert("8", issued_at=local))
    got = store.get_certificate("8")
    assert got is not None
    assert got.issued_at == T0 and got.issued_at.utcoffset() == dt.timedelta(0)
    assert got.not_after == T0 + DAY


def test_endpoint_create_if_absent_keeps_the_first(store: Store) -> None:
    first = endpoint("ep-1", name="first")
    second = dataclasses.replace(endpoint("ep-1", name="second"), created_at=T0 + HOUR)
    store.record_issuance(cert("1"), new_endpoint=first)
    store.record_issuance(cert("2", issued_at=T0 + HOUR), new_endpoint=second)
    assert store.get_endpoint("ep-1") == first
    assert [c.serial for c in store.list_certificates_by_endpoint("ep-1")] == ["1", "2"]
    assert len(store.list_endpoints()) == 1


def test_duplicate_serial_conflicts_and_leaves_nothing_behind(store: Store) -> None:
    original = cert("42", endpoint_id="ep-1")
    store.record_issuance(original, new_endpoint=endpoint("ep-1"), events=[event("ev-1")])
    duplicate = cert("42", endpoint_id="ep-2", common_name="other")
    with pytest.raises(Conflict):
        store.record_issuance(duplicate, new_endpoint=endpoint("ep-2"), events=[event("ev-2")])
    assert store.get_certificate("42") == original
    assert store.get_endpoint("ep-2") is None
    assert store.list_certificates_by_endpoint("ep-2") == []
    assert [e.id for e in store.list_events()] == ["ev-1"]


def test_failing_event_rolls_back_the_whole_issuance(store: Store) -> None:
    bad = event("ev-bad", data={"not json": object()})
    with pytest.raises(ValueError):
        store.record_issuance(
            cert("43", endpoint_id="ep-9"),
            new_endpoint=endpoint("ep-9"),
            events=[event("ev-ok"), bad],
        )
    assert store.get_certificate("43") is None
    assert store.get_endpoint("ep-9") is None
    assert store.list_certificates_by_endpoint("ep-9") == []
    assert store.list_events() == []
    # The same issuance with good events then succeeds: nothing was left locked or half-made.
    store.record_issuance(
        cert("43", endpoint_id="ep-9"), new_endpoint=endpoint("ep-9"), events=[event("ev-ok")]
    )
    assert store.get_certificate("43") is not None


def test_new_endpoint_must_be_the_certificates_endpoint(store: Store) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        store.record_issuance(cert("44", endpoint_id="ep-a"), new_endpoint=endpoint("ep-b"))
    assert store.get_certificate("44") is None
    assert store.get_endpoint("ep-b") is None


def test_list_certificates_by_endpoint_oldest_first(store: Store) -> None:
    store.record_issuance(cert("30", issued_at=T0 + 2 * HOUR))
    store.record_issuance(cert("10", issued_at=T0))
    store.record_issuance(cert("99", endpoint_id="ep-other", issued_at=T0 - HOUR))
    store.record_issuance(cert("20", issued_at=T0 + HOUR))
    store.record_issuance(cert("25", issued_at=T0 + HOUR))
    serials = [c.serial for c in store.list_certificates_by_endpoint("ep-1")]
    assert serials == ["10", "20", "25", "30"]
    assert store.list_certificates_by_endpoint("nobody") == []


# ============================================================================ endpoints


def test_list_endpoints_pages_by_id(store: Store) -> None:
    ids = [f"ep-{i:02d}" for i in range(12)]
    for n, endpoint_id in enumerate(reversed(ids)):
        store.record_issuance(
            cert(str(n), endpoint_id=endpoint_id), new_endpoint=endpoint(endpoint_id)
        )
    page1 = store.list_endpoints(limit=5)
    assert [e.id for e in page1] == ids[:5]
    page2 = store.list_endpoints(limit=5, after=page1[-1].id)
    assert [e.id for e in page2] == ids[5:10]
    page3 = store.list_endpoints(limit=5, after=page2[-1].id)
    assert [e.id for e in page3] == ids[10:]
    assert store.list_endpoints(limit=5, after=ids[-1]) == []
    assert [e.id for e in store.list_endpoints()] == ids
    assert store.get_endpoint("ep-03") == endpoint("ep-03")


def test_list_endpoints_by_authority(store: Store) -> None:
    for i in range(6):
        authority = "auth-a" if i % 2 == 0 else "auth-b"
        store.record_issuance(
            cert(str(i), endpoint_id=f"ep-{i}", authority_id=authority),
            new_endpoint=endpoint(f"ep-{i}", authority_id=authority),
        )
    assert [e.id for e in store.list_endpoints(authority_id="auth-a")] == ["ep-0", "ep-2", "ep-4"]
    assert [e.id for e in store.list_endpoints(authority_id="auth-b", after="ep-1", limit=1)] == [
        "ep-3"
    ]
    assert store.list_endpoints(authority_id="auth-c") == []


# ============================================================================ revocations


def test_revoke_round_trip_and_twice(store: Store) -> None:
    rev = revocation("77")
    store.revoke(rev, events=[event("rev-1")])
    assert store.get_revocation("77") == rev
    assert store.get_revocation("78") is None
    with pytest.raises(AlreadyRevoked) as info:
        store.revoke(dataclasses.replace(rev, reason="again"), events=[event("rev-2")])
    assert info.value.serial == "77"
    assert store.get_revocation("77") == rev
    assert [e.id for e in store.list_events()] == ["rev-1"]


def test_list_revocations_filters_by_authority_and_expiry(store: Store) -> None:
    store.revoke(revocation("1", not_after=T0 - DAY))  # expired before the window
    store.revoke(revocation("2", not_after=T0))  # exactly at the boundary: kept
    store.revoke(revocation("3", not_after=T0 + DAY))
    store.revoke(revocation("4", authority_id="auth-2", not_after=T0 + DAY))
    store.revoke(revocation("5", not_after=T0 + HOUR))
    got = store.list_revocations("auth-1", not_after_since=T0)
    assert sorted(r.serial for r in got) == ["2", "3", "5"]
    assert all(r.authority_id == "auth-1" for r in got)
    assert [r.serial for r in store.list_revocations("auth-2", not_after_since=T0)] == ["4"]
    assert store.list_revocations("auth-3", not_after_since=T0) == []
    assert len(store.list_revocations("auth-1", not_after_since=T0 - 2 * DAY)) == 4


def test_revoked_since_answers_whether_any_revocation_is_that_recent(store: Store) -> None:
    assert not store.revoked_since(T0 - DAY)
    store.revoke(dataclasses.replace(revocation("1"), revoked_at=T0))
    store.revoke(dataclasses.replace(revocation("2", authority_id="auth-2"), revoked_at=T0 + HOUR))
    assert store.revoked_since(T0 - DAY)
    assert store.revoked_since(T0 + HOUR)  # at the boundary: included, whichever authority
    assert not store.revoked_since(T0 + HOUR + dt.timedelta(seconds=1))


# ============================================================================ events


def test_events_ordered_by_time_then_id(store: Store) -> None:
    store.append_events([event("c", time=T0 + HOUR), event("b", time=T0), event("z", time=T0)])
    store.record_issuance(cert("1"), events=[event("a", time=T0 + HOUR)])
    store.append_events([event("m", time=T0 - HOUR)])
    assert [e.id for e in store.list_events()] == ["m", "b", "z", "a", "c"]


def test_events_since_is_inclusive_and_limit_applies(store: Store) -> None:
    store.append_events([event(f"e{i}", time=T0 + i * HOUR) for i in range(10)])
    assert [e.id for e in store.list_events(since=T0 + 3 * HOUR, limit=3)] == ["e3", "e4", "e5"]
    assert [e.id for e in store.list_events(since=T0 + 8 * HOUR)] == ["e8", "e9"]
    assert store.list_events(since=T0 + 10 * HOUR) == []
    assert len(store.list_events(limit=4)) == 4


def test_events_round_trip_and_duplicate_id_is_idempotent(store: Store) -> None:
    original = event("dup", data={"nested": {"list": [1, 2.5, None, "x"]}, "flag": False})
    store.append_events([original])
    store.append_events([original, event("other")])
    got = store.list_events()
    assert [e.id for e in got] == ["dup", "other"]
    assert got[0] == original
    assert got[0].time.utcoffset() == dt.timedelta(0)
    store.append_events([])


# ============================================================================ counters


def test_counter_starts_at_one_and_increases(store: Store) -> None:
    assert [store.next_value("crl") for _ in range(5)] == [1, 2, 3, 4, 5]
    assert store.next_value("other") == 1
    assert store.next_value("crl") == 6


# ============================================================================ documents


def test_document_create_get_and_create_if_absent(store: Store) -> None:
    data = {"status": "valid", "key": {"kty": "EC"}, "n": 3}
    assert store.create_document("accounts", "a1", data) is True
    assert store.get_document("accounts", "a1") == (data, 1)
    assert store.create_document("accounts", "a1", {"status": "other"}) is False
    assert store.get_document("accounts", "a1") == (data, 1)
    assert store.get_document("accounts", "missing") is None
    assert store.get_document("orders", "a1") is None
    assert store.create_document("orders", "a1", {}) is True


def test_get_documents_reads_several_in_order(store: Store) -> None:
    store.create_document("accounts", "a1", {"status": "valid"})
    store.create_document("orders", "o1", {"status": "pending"})
    store.update_document("orders", "o1", {"status": "ready"}, expected_version=1)
    keys = [("orders", "o1"), ("accounts", "missing"), ("accounts", "a1"), ("orders", "a1"), ("orders", "o1")]
    got = store.get_documents(keys)
    assert got == [({"status": "ready"}, 2), None, ({"status": "valid"}, 1), None, ({"status": "ready"}, 2)]
    assert got[0] is not None and got[4] is not None
    got[0][0]["status"] = "changed"  # each answer is the caller's own copy
    assert got[4][0] == {"status": "ready"}
    assert store.get_documents([]) == []


def test_document_update_is_compare_and_set(store: Store) -> None:
    store.create_document("orders", "o1", {"status": "pending"})
    assert store.update_document("orders", "o1", {"status": "ready"}, expected_version=1)
    assert store.get_document("orders", "o1") == ({"status": "ready"}, 2)
    # A writer that read version 1 loses and changes nothing.
    assert not store.update_document("orders", "o1", {"status": "invalid"}, expected_version=1)
    assert store.get_document("orders", "o1") == ({"status": "ready"}, 2)
    assert store.update_document("orders", "o1", {"status": "valid"}, expected_version=2)
    assert store.get_document("orders", "o1") == ({"status": "valid"}, 3)
    assert not store.update_document("orders", "nope", {"status": "x"}, expected_version=1)
    assert store.get_document("orders", "nope") is None


def test_document_data_is_isolated_from_the_caller(store: Store) -> None:
    data: dict[str, Any] = {"list": [1]}
    store.create_document("c", "d", data)
    data["list"].append(2)
    got = store.get_document("c", "d")
    assert got == ({"list": [1]}, 1)
    assert got is not None
    got[0]["list"].append(3)
    assert store.get_document("c", "d") == ({"list": [1]}, 1)


def test_document_rejects_non_json(store: Store) -> None:
    with pytest.raises(ValueError):
        store.create_document("c", "d", {"when": T0})
    with pytest.raises(ValueError):
        store.create_document("c", "d", {"x": float("nan")})
    assert store.get_document("c", "d") is None
    store.create_document("c", "d", {"ok": 1})
    with pytest.raises(ValueError):
        store.update_document("c", "d", {"bytes": b"x"}, expected_version=1)
    assert store.get_document("c", "d") == ({"ok": 1}, 1)


def test_find_documents_by_top_level_field(store: Store) -> None:
    store.create_document("accounts", "a2", {"thumbprint": "tp-1", "status": "valid"})
    store.create_document("accounts", "a1", {"thumbprint": "tp-1", "status": "deactivated"})
    store.create_document("accounts", "a3", {"thumbprint": "tp-2", "status": "valid"})
    store.create_document("other", "a4", {"thumbprint": "tp-1"})
    store.create_document("accounts", "a5", {"nested": {"thumbprint": "tp-1"}, "n": 5})
    found = store.find_documents("accounts", "thumbprint", "tp-1")
    assert [(i, v) for i, _, v in found] == [("a1", 1), ("a2", 1)]
    assert found[0][1] == {"thumbprint": "tp-1", "status": "deactivated"}
    assert [i for i, _, _ in store.find_documents("accounts", "thumbprint", "tp-1", limit=1)] == [
        "a1"
    ]
    assert [i for i, _, _ in store.find_documents("accounts", "status", "valid")] == ["a2", "a3"]
    assert store.find_documents("accounts", "thumbprint", "tp-9") == []
    assert store.find_documents("accounts", "n", "5") == []  # only string fields match


def test_find_documents_follows_updates(store: Store) -> None:
    store.create_document("orders", "o1", {"account": "acc-1", "status": "pending"})
    assert store.update_document(
        "orders", "o1", {"account": "acc-2", "status": "ready"}, expected_version=1
    )
    assert store.find_documents("orders", "account", "acc-1") == []
    assert store.find_documents("orders", "account", "acc-2") == [
        ("o1", {"account": "acc-2", "status": "ready"}, 2)
    ]
    assert store.find_documents("orders", "status", "pending") == []


def test_find_documents_with_long_values(store: Store) -> None:
    long_a = "A" * 5000
    long_b = "A" * 4999 + "B"
    store.create_document("certs", "c1", {"csr": long_a})
    store.create_document("certs", "c2", {"csr": long_b})
    assert [i for i, _, _ in store.find_documents("certs", "csr", long_a)] == ["c1"]
    assert [i for i, _, _ in store.find_documents("certs", "csr", long_b)] == ["c2"]


def test_document_with_expiry_is_readable_until_swept(store: Store) -> None:
    assert store.create_document("nonces", "n1", {"v": "x"}, expires_at=T0 + HOUR)
    assert store.get_document("nonces", "n1") == ({"v": "x"}, 1)


# ============================================================================ concurrency (threads)


def test_threads_claiming_one_key_exactly_one_wins(store: Store) -> None:
    keys = [f"key-{i}" for i in range(40)]

    def claim_all(_: int) -> list[str]:
        return [k for k in keys if store.claim("jti", k, T0 + HOUR)]

    results = run_threads(8, claim_all)
    winners = [k for won in results for k in won]
    assert sorted(winners) == sorted(keys)  # every key won exactly once


def test_threads_counter_has_no_duplicates(store: Store) -> None:
    results = run_threads(6, lambda _: [store.next_value("crl") for _ in range(50)])
    values = [v for r in results for v in r]
    assert sorted(values) == list(range(1, 301))
    for r in results:
        assert r == sorted(r)


def test_threads_compare_and_set_one_winner(store: Store) -> None:
    store.create_document("orders", "o1", {"winner": ""})
    results = run_threads(
        8,
        lambda i: store.update_document("orders", "o1", {"winner": str(i)}, expected_version=1),
    )
    assert results.count(True) == 1
    data, version = store.get_document("orders", "o1") or ({}, 0)
    assert version == 2
    assert data["winner"] == str(results.index(True))


def test_threads_create_document_one_winner(store: Store) -> None:
    results = run_threads(8, lambda i: store.create_document("accounts", "a", {"by": str(i)}))
    assert results.count(True) == 1
    assert store.get_document("accounts", "a") == ({"by": str(results.index(True))}, 1)


def test_threads_issuing_into_one_new_endpoint(store: Store) -> None:
    results = run_threads(
        6,
        lambda i: store.record_issuance(
            cert(str(i), endpoint_id="shared"),
            new_endpoint=endpoint("shared", name=f"n{i}"),
            events=[event(f"ev-{i}")],
        ),
    )
    assert results == [None] * 6
    assert len(store.list_certificates_by_endpoint("shared")) == 6
    assert len(store.list_endpoints()) == 1
    assert len(store.list_events()) == 6


# ========================================================================= concurrency (processes)


def _race(target: Callable[..., None], args: tuple[Any, ...], processes: int = 2) -> list[Any]:
    """Run `target(*args, barrier, queue)` in separate spawned processes."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    try:
        results = [queue.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
    errors = [r["child_error"] for r in results if isinstance(r, dict) and "child_error" in r]
    assert not errors, "\n".join(errors)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return results


def test_processes_claiming_same_keys_exactly_one_wins(shared_store_url: str) -> None:
    keys = [f"jti-{i}" for i in range(300)]
    results = _race(_store_workers.claim_keys, (shared_store_url, keys))
    winners = [k for won in results for k in won]
    assert sorted(winners) == sorted(keys)
    assert len(set(winners)) == len(winners)


def test_processes_counter_has_no_duplicates(shared_store_url: str) -> None:
    results = _race(_store_workers.count, (shared_store_url, 200))
    values = [v for r in results for v in r]
    assert sorted(values) == list(range(1, 401))
    for r in results:
        assert r == sorted(r) and len(set(r)) == len(r)


# ========================================================================= issuance with its token claim


def test_record_issuance_claims_the_token_atomically(store: Store) -> None:
    from shared.errors import TokenAlreadyUsed
    from shared.model import TokenClaim

    claim = TokenClaim("ott:p", "jti-atomic", T0 + dt.timedelta(minutes=5))
    first = cert("100001", endpoint_id="ep-claim")
    store.record_issuance(first, new_endpoint=endpoint("ep-claim"), claim=claim)
    assert store.get_certificate("100001") is not None
    # The same token again: refused, and the second certificate is not recorded.
    with pytest.raises(TokenAlreadyUsed):
        store.record_issuance(cert("100002", endpoint_id="ep-claim"), claim=claim)
    assert store.get_certificate("100002") is None
    assert store.claim("ott:p", "jti-atomic", T0 + dt.timedelta(minutes=5)) is False
    # A duplicate serial fails the whole write: the new token stays unused.
    other = TokenClaim("ott:p", "jti-unused", T0 + dt.timedelta(minutes=5))
    with pytest.raises(Conflict):
        store.record_issuance(cert("100001", endpoint_id="ep-claim"), claim=other)
    assert store.claim("ott:p", "jti-unused", T0 + dt.timedelta(minutes=5)) is True


# ========================================================================= several issuances in one commit


def test_record_issuances_keeps_each_write_all_or_nothing(store: Store) -> None:
    from shared.errors import TokenAlreadyUsed
    from shared.model import TokenClaim
    from shared.store.base import BatchIssuanceLedger, IssuanceWrite

    if not isinstance(store, BatchIssuanceLedger):
        pytest.skip("this backend records issuances one by one")
    store.record_issuance(cert("200000", endpoint_id="ep-b0"), new_endpoint=endpoint("ep-b0"))
    exp = T0 + dt.timedelta(minutes=5)
    writes = [
        IssuanceWrite(cert("200001", endpoint_id="ep-b1"), endpoint("ep-b1"), [event("ev-b1")], TokenClaim("ott:p", "b1", exp)),
        # the same token as the first: refused, nothing of it kept
        IssuanceWrite(cert("200002", endpoint_id="ep-b2"), endpoint("ep-b2"), [event("ev-b2")], TokenClaim("ott:p", "b1", exp)),
        # a serial already recorded: refused, and its token stays unused
        IssuanceWrite(cert("200000", endpoint_id="ep-b3"), endpoint("ep-b3"), [event("ev-b3")], TokenClaim("ott:p", "b3", exp)),
        IssuanceWrite(cert("200004", endpoint_id="ep-b4"), endpoint("ep-b4"), [event("ev-b4")], TokenClaim("ott:p", "b4", exp)),
    ]
    outcomes = store.record_issuances(writes)
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], TokenAlreadyUsed)
    assert isinstance(outcomes[2], Conflict)
    assert store.get_certificate("200001") is not None and store.get_certificate("200004") is not None
    assert store.get_certificate("200002") is None
    assert store.get_endpoint("ep-b2") is None and store.get_endpoint("ep-b3") is None
    assert store.get_endpoint("ep-b4") is not None
    ids = {e.id for e in store.list_events(limit=100)}
    assert {"ev-b1", "ev-b4"} <= ids and not ids & {"ev-b2", "ev-b3"}
    assert store.claim("ott:p", "b3", exp) is True  # the refused write's token was not spent
    assert store.claim("ott:p", "b4", exp) is False
    assert store.record_issuances([]) == []


def test_record_issuances_records_a_clean_batch_whole(store: Store) -> None:
    from shared.model import TokenClaim
    from shared.store.base import BatchIssuanceLedger, IssuanceWrite

    if not isinstance(store, BatchIssuanceLedger):
        pytest.skip("this backend records issuances one by one")
    exp = T0 + dt.timedelta(minutes=5)
    writes = [
        IssuanceWrite(cert(f"3000{i}", endpoint_id=f"ep-c{i}"), endpoint(f"ep-c{i}"), [event(f"ev-c{i}")], TokenClaim("ott:p", f"c{i}", exp))
        for i in range(4)
    ]
    assert store.record_issuances(writes) == [None] * 4
    assert all(store.get_certificate(f"3000{i}") is not None for i in range(4))
    assert all(store.get_endpoint(f"ep-c{i}") is not None for i in range(4))
    assert {f"ev-c{i}" for i in range(4)} <= {e.id for e in store.list_events(limit=100)}
    assert not any(store.claim("ott:p", f"c{i}", exp) for i in range(4))  # every token spent


# ========================================================================= documents written with a token claim


def test_create_document_claiming_writes_both_or_neither(store: Store) -> None:
    from shared.errors import TokenAlreadyUsed
    from shared.model import TokenClaim

    claim = TokenClaim("acme-nonce", "n1", T0 + HOUR)
    assert store.create_document_claiming("orders", "o1", {"s": "pending"}, claim=claim, expires_at=T0 + DAY)
    assert store.get_document("orders", "o1") == ({"s": "pending"}, 1)
    assert store.claim("acme-nonce", "n1", T0 + HOUR) is False
    # The same claim again: refused, and the second document is not created.
    with pytest.raises(TokenAlreadyUsed):
        store.create_document_claiming("orders", "o2", {"s": "pending"}, claim=claim)
    assert store.get_document("orders", "o2") is None
    # An existing document: False, and the new claim stays unused.
    fresh = TokenClaim("acme-nonce", "n2", T0 + HOUR)
    assert store.create_document_claiming("orders", "o1", {"s": "other"}, claim=fresh) is False
    assert store.get_document("orders", "o1") == ({"s": "pending"}, 1)
    assert store.claim("acme-nonce", "n2", T0 + HOUR) is True


def test_update_document_claiming_is_compare_and_set_with_the_claim(store: Store) -> None:
    from shared.errors import TokenAlreadyUsed
    from shared.model import TokenClaim

    store.create_document("orders", "o1", {"s": "ready"})
    first = TokenClaim("acme-nonce", "u1", T0 + HOUR)
    # A stale version: False, nothing written, the claim stays free for the retry.
    assert store.update_document_claiming("orders", "o1", {"s": "x"}, expected_version=7, claim=first) is False
    assert store.update_document_claiming("orders", "nope", {"s": "x"}, expected_version=1, claim=first) is False
    assert store.get_document("orders", "o1") == ({"s": "ready"}, 1)
    assert store.update_document_claiming("orders", "o1", {"s": "processing"}, expected_version=1, claim=first)
    assert store.get_document("orders", "o1") == ({"s": "processing"}, 2)
    assert store.claim("acme-nonce", "u1", T0 + HOUR) is False
    # The claim again (a replayed request): refused even at the right version, document unchanged.
    with pytest.raises(TokenAlreadyUsed):
        store.update_document_claiming("orders", "o1", {"s": "valid"}, expected_version=2, claim=first)
    assert store.get_document("orders", "o1") == ({"s": "processing"}, 2)
    store.claim("acme-nonce", "u2", T0 + HOUR)
    with pytest.raises(TokenAlreadyUsed):
        store.update_document_claiming(
            "orders", "o1", {"s": "valid"}, expected_version=2, claim=TokenClaim("acme-nonce", "u2", T0 + HOUR)
        )
    assert store.get_document("orders", "o1") == ({"s": "processing"}, 2)


def test_threads_update_document_claiming_one_claim_one_winner(store: Store) -> None:
    from shared.errors import TokenAlreadyUsed
    from shared.model import TokenClaim

    store.create_document("orders", "o1", {"n": 0})
    claim = TokenClaim("acme-nonce", "race", T0 + HOUR)

    def body(i: int) -> str:
        # Each thread retries its compare-and-set until it wins or finds the claim spent.
        for _ in range(50):
            found = store.get_document("orders", "o1")
            assert found is not None
            try:
                if store.update_document_claiming(
                    "orders", "o1", {"n": found[0]["n"] + 1}, expected_version=found[1], claim=claim
                ):
                    return "won"
            except TokenAlreadyUsed:
                return "used"
        return "gave up"

    results = run_threads(6, body)
    assert sorted(results) == ["used"] * 5 + ["won"]
    assert store.get_document("orders", "o1") == ({"n": 1}, 2)


def test_list_certificates_expiring_is_a_half_open_window(store: Store) -> None:
    for i, hours in enumerate((1, 2, 3, 5)):
        store.record_issuance(cert(f"30000{i}", endpoint_id=f"ep-x{i}", not_after=T0 + dt.timedelta(hours=hours)),
                              new_endpoint=endpoint(f"ep-x{i}"))
    store.record_issuance(cert("399999", authority_id="other", not_after=T0 + dt.timedelta(hours=2)))
    got = store.list_certificates_expiring("auth-1", T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=5))  # type: ignore[attr-defined]
    assert [(s, e) for _, s, e in got] == [("300001", "ep-x1"), ("300002", "ep-x2")]
    assert got[0][0] == T0 + dt.timedelta(hours=2)
    assert store.list_certificates_expiring("auth-1", T0, T0 + dt.timedelta(hours=9), limit=1)[0][1] == "300000"  # type: ignore[attr-defined]
