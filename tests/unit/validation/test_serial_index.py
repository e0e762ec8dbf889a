"""The published serial index: segments, manifest, compaction, racing publishers, the responder's reader."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from shared.blobs.local import LocalBlobStore
from shared.clock import FixedClock
from shared.errors import BackendError
from shared.model import CertificateKind, CertificateRecord, ProvisionerRef
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore
from shared.validation.ocsp import OCSPAuthority, OCSPResponder
from shared.validation.serial_index import (
    SERIAL_BYTES,
    Manifest,
    PublishedSerials,
    SerialIndexPublisher,
    SortedSerials,
    manifest_name,
    pack_serials,
)
from tests.unit.validation.va_pki import BASE_URL, T0, World

AID = "intermediate"


def record(serial: int, issued_at: dt.datetime, *, days: int = 30, kind: CertificateKind = CertificateKind.X509) -> CertificateRecord:
    return CertificateRecord(
        serial=str(serial),
        authority_id=AID,
        kind=kind,
        der=b"\x30\x03\x02\x01\x01",
        not_before=issued_at,
        not_after=issued_at + dt.timedelta(days=days),
        provisioner=ProvisionerRef(id="p", name="p", type="JWK"),
        endpoint_id=f"ep-{serial}",
        subject_key=f"s{serial}",
        common_name=f"s{serial}",
        sans=(),
        issued_at=issued_at,
    )


def new_serial() -> int:
    return (1 << 150) | secrets.randbits(150)


class CountingStore(MemoryStore):
    """A real in-process store that counts the rows the index query returns."""

    rows_read = 0

    def list_serials_issued_since(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        rows = super().list_serials_issued_since(*args, **kwargs)
        self.rows_read += len(rows)
        return rows


class HookedBlobs(LocalBlobStore):
    """A real blob folder that runs `before_manifest_write` once, just before a manifest write."""

    before_manifest_write: Callable[[], None] | None = None

    def write(self, name: str, data: bytes, **kw):  # type: ignore[no-untyped-def, override]
        hook = self.before_manifest_write
        if hook is not None and name.endswith("index.json"):
            self.before_manifest_write = None
            hook()
        return super().write(name, data, **kw)


def published(blobs: LocalBlobStore) -> set[int]:
    """Every serial the published index holds, read as the responder reads it."""
    blob = blobs.read(manifest_name(AID))
    assert blob is not None
    manifest = Manifest.decode(blob.data, AID)
    out = set(SortedSerials(manifest.tail))
    for seg in manifest.segments:
        data = blobs.read(seg.name)
        assert data is not None
        out.update(SortedSerials(data.data))
    return out


def make(tmp_path: Path, store: object, clock: FixedClock, blobs: LocalBlobStore | None = None, **kw: object) -> tuple[SerialIndexPublisher, LocalBlobStore]:
    blobs = blobs or LocalBlobStore(root=tmp_path / "blobs", fsync=False)
    return SerialIndexPublisher(issued=store, blobs=blobs, clock=clock, authority_ids=[AID], **kw), blobs  # type: ignore[arg-type]


def test_sorted_serials_binary_search() -> None:
    serials = [new_serial() for _ in range(500)] + [1, 2**159 - 1]
    packed = pack_serials(serials + serials[:10])  # duplicates collapse
    assert len(packed) == SERIAL_BYTES * len(serials)
    index = SortedSerials(packed)
    assert list(index) == sorted(serials)
    assert all(s in index for s in serials)
    assert 3 not in index and 2**159 not in index and 0 not in index and -1 not in index and "1" not in index
    assert 5 not in SortedSerials(b"")
    with pytest.raises(ValueError):
        SortedSerials(b"\x00" * 21)


def test_incremental_runs_read_only_new_issuances(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    store = CountingStore(clock=clock)
    publisher, blobs = make(tmp_path, store, clock, tail_entries=50, segment_entries=200)
    first = [new_serial() for _ in range(120)]
    for i, s in enumerate(first):
        store.record_issuance(record(s, T0 - dt.timedelta(days=1) + dt.timedelta(seconds=i)))
    store.record_issuance(record(new_serial(), T0, kind=CertificateKind.SSH))  # not an X.509 serial
    [r] = publisher.publish()
    assert r.added == 120 and r.generation is not None and r.total == 120
    assert published(blobs) == set(first)
    assert r.segments == 1  # over the tail size: sealed
    # nothing new: nothing written, and the store is asked only for the overlap window
    store.rows_read = 0
    clock.advance(dt.timedelta(minutes=10))
    [again] = publisher.publish()
    assert again.generation is None and again.added == 0
    assert store.rows_read <= 1  # the SSH record at the cursor, nothing older
    # a few new ones go into the inline tail; the store returns only those
    later = [new_serial() for _ in range(5)]
    for s in later:
        store.record_issuance(record(s, clock.now()))
    store.rows_read = 0
    [r2] = publisher.publish()
    assert r2.added == 5 and store.rows_read == 5 + 1 and r2.segments == 1  # + the SSH row in the overlap
    manifest = Manifest.decode(blobs.read(manifest_name(AID)).data, AID)  # type: ignore[union-attr]
    assert set(SortedSerials(manifest.tail)) == set(later)
    assert published(blobs) == set(first) | set(later)


def test_late_commit_inside_the_overlap_is_indexed(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    publisher, blobs = make(tmp_path, store, clock, overlap=dt.timedelta(minutes=2))
    a, late, b = new_serial(), new_serial(), new_serial()
    store.record_issuance(record(a, T0 - dt.timedelta(seconds=30)))
    store.record_issuance(record(b, T0))  # the cursor moves to T0
    publisher.publish()
    # signed at T0 - 10 s, but its record only now becomes durable: below the cursor
    store.record_issuance(record(late, T0 - dt.timedelta(seconds=10)))
    clock.advance(dt.timedelta(seconds=20))
    [r] = publisher.publish()
    assert r.added == 1
    assert published(blobs) == {a, b, late}
    # and the overlap re-read never duplicates what is already indexed
    [r] = publisher.publish()
    assert r.added == 0 and r.total == 3



def test_a_frequent_publisher_looks_back_fully_once_a_minute(tmp_path: Path) -> None:
    """With `quick_overlap`, runs re-read only that far, and the whole overlap every `full_overlap_every`."""
    clock = FixedClock(T0)
    store = CountingStore(clock=clock)
    publisher, blobs = make(
        tmp_path, store, clock, overlap=dt.timedelta(minutes=2),
        quick_overlap=dt.timedelta(seconds=15), full_overlap_every=dt.timedelta(minutes=1),
    )
    recent = [new_serial() for _ in range(30)]
    for i, s in enumerate(recent):  # one a second for the last 30 s
        store.record_issuance(record(s, T0 - dt.timedelta(seconds=30 - i)))
    [r] = publisher.publish()  # the first run looks back fully
    assert r.added == 30
    clock.advance(dt.timedelta(seconds=5))
    store.rows_read = 0
    [r] = publisher.publish()
    assert r.added == 0 and store.rows_read == 16  # the cursor was T0 - 1 s: from T0 - 16 s on, 16 rows
    late_quick, late_full = new_serial(), new_serial()
    store.record_issuance(record(late_quick, T0 - dt.timedelta(seconds=10)))  # inside the quick look-back
    store.record_issuance(record(late_full, T0 - dt.timedelta(seconds=60)))  # only a full one sees it
    clock.advance(dt.timedelta(seconds=5))
    [r] = publisher.publish()
    assert r.added == 1 and late_full not in published(blobs)
    clock.advance(dt.timedelta(seconds=50))  # a minute since the last full run
    store.rows_read = 0
    [r] = publisher.publish()
    assert r.added == 1 and store.rows_read == 32  # the whole 2 minutes: 30 + the two late ones
    assert published(blobs) == {*recent, late_quick, late_full}
    [r] = publisher.publish()  # the full run was just now: quick again
    assert r.added == 0


def test_quick_overlap_must_fit_inside_the_overlap(tmp_path: Path) -> None:
    from shared.errors import ConfigError

    clock = FixedClock(T0)
    with pytest.raises(ConfigError, match="quick overlap"):
        make(tmp_path, MemoryStore(clock=clock), clock, overlap=dt.timedelta(seconds=10), quick_overlap=dt.timedelta(seconds=20))

def test_same_timestamp_paging_skips_nothing(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    publisher, blobs = make(tmp_path, store, clock, page=3, tail_entries=4, segment_entries=8)
    serials = [new_serial() for _ in range(25)]
    for s in serials:
        store.record_issuance(record(s, T0))  # all in one microsecond
    [r] = publisher.publish()
    assert r.added == 25 and published(blobs) == set(serials)
    assert r.segments == 4  # 25 serials in segments of at most 8


def test_compaction_merges_and_drops_expired(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    publisher, blobs = make(
        tmp_path, store, clock, tail_entries=2, segment_entries=64, max_segments=3, retain_after_expiry=dt.timedelta(days=1)
    )
    short = [new_serial() for _ in range(3)]
    for s in short:
        store.record_issuance(record(s, clock.now(), days=1))
    publisher.publish()
    long: list[int] = []
    for _ in range(6):  # six runs, each sealing a small segment
        clock.advance(dt.timedelta(hours=1))
        batch = [new_serial() for _ in range(3)]
        long.extend(batch)
        for s in batch:
            store.record_issuance(record(s, clock.now(), days=90))
        publisher.publish()
    manifest = Manifest.decode(blobs.read(manifest_name(AID)).data, AID)  # type: ignore[union-attr]
    assert len(manifest.segments) <= 3  # merged down
    assert published(blobs) == set(short) | set(long)
    assert [s.first_issued for s in manifest.segments] == sorted(s.first_issued for s in manifest.segments)
    # two days on, the short-lived certificates' segment has expired for a day: dropped when alone
    clock.advance(dt.timedelta(days=3))
    publisher.publish()
    still = published(blobs)
    assert set(long) <= still
    # a segment merged with long-lived ones is kept whole (never a missing live serial)
    assert still - set(long) <= set(short)


def test_racing_publishers_never_lose_a_serial(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    blobs = HookedBlobs(root=tmp_path / "blobs", fsync=False)
    a, _ = make(tmp_path, store, clock, blobs, tail_entries=3, segment_entries=16)
    b, _ = make(tmp_path, store, clock, blobs, tail_entries=3, segment_entries=16)
    first = [new_serial() for _ in range(5)]
    for s in first:
        store.record_issuance(record(s, T0))
    a.publish()
    second = [new_serial() for _ in range(5)]
    for s in second:
        store.record_issuance(record(s, T0 + dt.timedelta(seconds=1)))
    third = [new_serial() for _ in range(2)]

    def interleave() -> None:
        # B wins the race with more issuances than A saw; A's write must fail and be redone
        for s in third:
            store.record_issuance(record(s, T0 + dt.timedelta(seconds=2)))
        b.publish()

    blobs.before_manifest_write = interleave
    [r] = a.publish()
    assert blobs.before_manifest_write is None  # the race happened
    # A's write lost; it re-read B's manifest, found everything indexed and wrote nothing
    assert r.generation is None and r.added == 0
    assert published(blobs) == set(first) | set(second) | set(third)
    assert r.total == 12  # nothing indexed twice


def segment_files(tmp_path: Path) -> set[str]:
    """The segment objects actually in the blob folder (not what a manifest says)."""
    folder = tmp_path / "blobs" / "ocsp-index" / AID
    return {f"ocsp-index/{AID}/{p.name}" for p in folder.glob("seg-*.bin")}


def current_manifest(blobs: LocalBlobStore) -> Manifest:
    blob = blobs.read(manifest_name(AID))
    assert blob is not None
    return Manifest.decode(blob.data, AID)


def test_superseded_segments_are_deleted_after_the_grace(tmp_path: Path) -> None:
    """Merged and expired segments are retired by the manifest, then deleted once readers cannot need them."""
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    publisher, blobs = make(tmp_path, store, clock, tail_entries=2, segment_entries=64, max_segments=2)
    serials: list[int] = []
    for _ in range(5):  # five runs, each sealing a small segment; merges retire the merged ones
        clock.advance(dt.timedelta(minutes=10))
        batch = [new_serial() for _ in range(3)]
        serials.extend(batch)
        for s in batch:
            store.record_issuance(record(s, clock.now(), days=90))
        publisher.publish()
    manifest = current_manifest(blobs)
    live = {s.name for s in manifest.segments}
    retired = {name for name, _ in manifest.retired}
    assert retired and not retired & live
    assert segment_files(tmp_path) == live | retired  # within the grace: still readable
    assert published(blobs) == set(serials)
    # an hour on, the next run (with nothing new to index) deletes them and forgets them
    clock.advance(dt.timedelta(hours=1, seconds=1))
    [result] = publisher.publish()
    assert result.generation is not None and result.added == 0
    assert current_manifest(blobs).retired == ()
    assert segment_files(tmp_path) == live
    assert published(blobs) == set(serials)
    assert publisher.publish()[0].generation is None  # and then nothing more to write


def test_a_losing_publisher_deletes_the_segments_it_sealed(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    blobs = HookedBlobs(root=tmp_path / "blobs", fsync=False)
    a, _ = make(tmp_path, store, clock, blobs, tail_entries=2, segment_entries=16)
    b, _ = make(tmp_path, store, clock, blobs, tail_entries=2, segment_entries=16)
    serials = [new_serial() for _ in range(5)]
    for s in serials:
        store.record_issuance(record(s, T0))
    blobs.before_manifest_write = b.publish  # B publishes between A's segment writes and A's manifest write
    [r] = a.publish()
    assert blobs.before_manifest_write is None and r.generation is None  # A lost, then found nothing to add
    assert segment_files(tmp_path) == {s.name for s in current_manifest(blobs).segments}  # A's copies are gone
    assert published(blobs) == set(serials)


def test_concurrent_issuers_and_publishers_on_sqlite(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    clock = FixedClock(T0)
    blobs = LocalBlobStore(root=tmp_path / "blobs", fsync=False)
    publishers = [make(tmp_path, store, clock, blobs, tail_entries=7, segment_entries=40, max_segments=4)[0] for _ in range(3)]
    issued: list[int] = []
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def issue(worker: int) -> None:
        for i in range(40):
            s = new_serial()
            # the real clock is not used: timestamps interleave across workers like skewed instances
            store.record_issuance(record(s, T0 + dt.timedelta(milliseconds=i * 3 + worker)))
            with lock:
                issued.append(s)

    def publish(p: SerialIndexPublisher) -> None:
        try:
            while not done.is_set():
                p.publish()
        except BaseException as exc:
            errors.append(exc)

    pubs = [threading.Thread(target=publish, args=(p,)) for p in publishers]
    issuers = [threading.Thread(target=issue, args=(w,)) for w in range(3)]
    for t in pubs + issuers:
        t.start()
    for t in issuers:
        t.join()
    done.set()
    for t in pubs:
        t.join()
    assert not errors
    publishers[0].publish()
    assert published(blobs) == set(issued)
    store.close()


def _world_with_index(tmp_path: Path) -> tuple[World, SerialIndexPublisher, PublishedSerials]:
    world = World(tmp_path)
    index = SerialIndexPublisher(issued=world.store, blobs=world.blobs, clock=world.clock, authority_ids=[AID])
    serials = PublishedSerials(blobs=world.blobs, clock=world.clock, recheck=dt.timedelta(seconds=30))
    world.responder = OCSPResponder(
        authorities=[OCSPAuthority(AID, world.chain.ca, world.chain.ca_signer)],
        crls=world.crls,
        issued=serials,
        clock=world.clock,
        crl_base_url=BASE_URL,
        presign=False,  # every answer consults the index
    )
    return world, index, serials


def test_responder_answers_from_the_published_index(tmp_path: Path) -> None:
    world, index, serials = _world_with_index(tmp_path)
    world.publisher.publish()
    leaf = world.issue()
    # a CRL but no index yet: the responder does not guess
    assert world.ask(leaf).response_status == ocsp.OCSPResponseStatus.TRY_LATER
    index.publish()
    world.clock.advance(dt.timedelta(seconds=31))
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD
    never = world.chain.leaf(now=world.now)
    answer = world.responder.respond(world.request(never))
    assert answer.status == "unknown" and not answer.cacheable
    # issued but not yet in the published index: unknown (the store is not consulted)
    late = world.issue()
    assert world.ask(late).certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    index.publish()
    world.clock.advance(dt.timedelta(seconds=31))
    assert world.ask(late).certificate_status == ocsp.OCSPCertStatus.GOOD
    # revoked: from the CRL, whatever the index says
    world.revoke(leaf, 1)
    world.publisher.publish()
    world.clock.advance(dt.timedelta(seconds=31))
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert serials.failures == 0


def test_reader_keeps_the_last_good_index(tmp_path: Path) -> None:
    world, index, serials = _world_with_index(tmp_path)
    world.publisher.publish()
    leaf = world.issue()
    index.publish()
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD
    name = manifest_name(AID)
    current = world.blobs.read(name)
    assert current is not None
    world.blobs.write(name, b"{not json", content_type="application/json", if_generation_match=current.generation)
    world.clock.advance(dt.timedelta(seconds=31))
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert serials.failures == 1
    # a manifest naming a segment whose bytes do not match is refused too
    doc = json.loads(current.data)
    doc["segments"] = [
        {"name": f"ocsp-index/{AID}/seg-x.bin", "count": 1, "sha256": "00" * 32, "firstIssued": "2026-01-01T00:00:00Z",
         "lastIssued": "2026-01-01T00:00:00Z", "notAfter": "2027-01-01T00:00:00Z"}
    ]
    world.blobs.write(f"ocsp-index/{AID}/seg-x.bin", b"\x01" * 20, content_type="application/octet-stream", if_generation_match=0)
    gen = world.blobs.read(name).generation  # type: ignore[union-attr]
    world.blobs.write(name, json.dumps(doc).encode(), content_type="application/json", if_generation_match=gen)
    world.clock.advance(dt.timedelta(seconds=31))
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert serials.failures == 2
    # the publisher refuses to build on an unreadable manifest rather than silently restarting
    with pytest.raises(BackendError):
        world.blobs.write(name, b"garbage", content_type="application/json", if_generation_match=gen + 1)
        index.publish()


def test_manifest_round_trip_and_checks() -> None:
    m = Manifest(AID, tail=pack_serials([5, 3]), cursor_time=T0, cursor_serial="3", updated=T0)
    back = Manifest.decode(m.encode(), AID)
    assert back == dataclasses.replace(m)
    with pytest.raises(ValueError):
        Manifest.decode(m.encode(), "other")
    evil = json.loads(m.encode())
    evil["segments"] = [{"name": "crl/intermediate.crl", "count": 1, "sha256": "", "firstIssued": "2026-01-01T00:00:00Z",
                         "lastIssued": "2026-01-01T00:00:00Z", "notAfter": "2026-01-01T00:00:00Z"}]
    with pytest.raises(ValueError):
        Manifest.decode(json.dumps(evil).encode(), AID)
