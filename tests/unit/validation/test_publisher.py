"""CRL publication: numbering, retention, shards, and races between publishers."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from cryptography import x509

from shared.blobs.base import Blob, PreconditionFailed
from shared.blobs.local import LocalBlobStore
from shared.clock import FixedClock
from shared.errors import ConfigError
from shared.model import Revocation
from shared.store.memory import MemoryStore
from shared.validation.partition import crl_url, shard_for_serial
from shared.validation.publisher import (
    CRL_CONTENT_TYPE,
    CRLAuthority,
    CRLPublisher,
    CRLSchedule,
    stored_crl_number,
)
from tests.unit.validation.va_pki import BASE_URL, T0, Chain, make_chain


def _publisher(
    chain: Chain,
    store: MemoryStore,
    blobs: LocalBlobStore,
    clock: FixedClock,
    *,
    shards: int = 0,
    arl: bool = False,
) -> CRLPublisher:
    authorities = [CRLAuthority(chain.authority_id, chain.ca, chain.ca_signer, shards=shards)]
    if arl:
        authorities.append(
            CRLAuthority(chain.root_id, chain.root, chain.root_signer, authority_list=True)
        )
    return CRLPublisher(
        revocations=store,
        counter=store,
        blobs=blobs,
        clock=clock,
        schedule=CRLSchedule(base_url=BASE_URL),
        authorities=authorities,
    )


def _revoke(
    store: MemoryStore,
    chain: Chain,
    serial: int,
    *,
    not_after: dt.datetime,
    reason: int = 1,
    authority_id: str | None = None,
) -> None:
    store.revoke(
        Revocation(
            serial=str(serial),
            authority_id=authority_id or chain.authority_id,
            revoked_at=T0 - dt.timedelta(hours=2),
            not_after=not_after,
            reason_code=reason,
        )
    )


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(root=tmp_path / "blobs", fsync=False)


def test_publish_numbers_retention_and_metadata(blobs: LocalBlobStore) -> None:
    chain = make_chain()
    store = MemoryStore()
    clock = FixedClock(T0)
    _revoke(store, chain, 1001, not_after=T0 + dt.timedelta(days=30))
    _revoke(store, chain, 1002, not_after=T0 - dt.timedelta(hours=12))  # expired < 1 interval ago
    _revoke(store, chain, 1003, not_after=T0 - dt.timedelta(days=2))  # expired long ago
    pub = _publisher(chain, store, blobs, clock)
    [first] = pub.publish()
    assert first.generation is not None and first.entries == 2
    blob = blobs.read("crl/intermediate.crl")
    assert blob is not None and blob.content_type == CRL_CONTENT_TYPE
    crl = x509.load_der_x509_crl(blob.data)
    assert crl.is_signature_valid(chain.ca_key.public_key())
    assert {r.serial_number for r in crl} == {1001, 1002}  # CRL-06: one CRL after expiry
    assert crl.last_update_utc == T0 and crl.next_update_utc == T0 + dt.timedelta(days=7)
    with pytest.raises(x509.ExtensionNotFound):  # IDP not on full CRLs
        crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    meta = (blobs._meta / "crl" / "intermediate.crl.json").read_text()
    assert "max-age=3600" in meta

    clock.advance(dt.timedelta(days=1))
    [second] = pub.publish()
    assert second.number == first.number + 1
    again = x509.load_der_x509_crl(blobs.read("crl/intermediate.crl").data)  # type: ignore[union-attr]
    assert {r.serial_number for r in again} == {1001}  # 1002 has now been listed after expiry


def test_shards_carry_idp_equal_to_partition_url(blobs: LocalBlobStore) -> None:
    chain = make_chain(shards=4)
    store = MemoryStore()
    leaves = [chain.leaf() for _ in range(12)]
    for leaf in leaves:
        _revoke(store, chain, leaf.serial_number, not_after=leaf.not_valid_after_utc)
    results = _publisher(chain, store, blobs, FixedClock(T0), shards=4).publish()
    assert [r.shard for r in results] == [0, 1, 2, 3]
    assert sum(r.entries for r in results) == 12
    for leaf in leaves:
        cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        cdp_uri = cdp[0].full_name[0].value  # type: ignore[index]
        shard = shard_for_serial(leaf.serial_number, 4)
        assert cdp_uri == crl_url(BASE_URL, chain.authority_id, shard)
        blob = blobs.read(f"crl/intermediate/{shard}.crl")
        assert blob is not None
        crl = x509.load_der_x509_crl(blob.data)
        idp_ext = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp_ext.critical
        assert idp_ext.value.full_name[0].value.encode() == cdp_uri.encode()  # type: ignore[index]
        assert idp_ext.value.only_contains_user_certs and not idp_ext.value.indirect_crl
        assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None


def test_arl_signed_by_root(blobs: LocalBlobStore) -> None:
    chain = make_chain()
    store = MemoryStore()
    _revoke(
        store,
        chain,
        chain.ca.serial_number,
        not_after=chain.ca.not_valid_after_utc,
        reason=2,
        authority_id=chain.root_id,
    )
    results = _publisher(chain, store, blobs, FixedClock(T0), arl=True).publish("root")
    assert [r.authority_id for r in results] == ["root"]
    arl = x509.load_der_x509_crl(blobs.read("crl/root.crl").data)  # type: ignore[union-attr]
    assert arl.issuer == chain.root.subject and arl.is_signature_valid(chain.root_key.public_key())
    entry = arl.get_revoked_certificate_by_serial_number(chain.ca.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.ca_compromise
    )


class RacingBlobs:
    """A real LocalBlobStore that lets another publisher run just before our write."""

    def __init__(self, inner: LocalBlobStore) -> None:
        self.inner = inner
        self.before_write: list[object] = []

    def read(self, name: str) -> Blob | None:
        return self.inner.read(name)

    def write(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str,
        if_generation_match: int | None,
        cache_control: str | None = None,
    ) -> int:
        while self.before_write:
            hook = self.before_write.pop()
            hook()  # type: ignore[operator]
        return self.inner.write(
            name,
            data,
            content_type=content_type,
            if_generation_match=if_generation_match,
            cache_control=cache_control,
        )

    def public_url(self, name: str) -> str:
        return self.inner.public_url(name)


def test_older_publisher_never_replaces_newer_crl(blobs: LocalBlobStore) -> None:
    chain = make_chain()
    store = MemoryStore()
    clock = FixedClock(T0)
    racing = RacingBlobs(blobs)
    slow = CRLPublisher(
        revocations=store,
        counter=store,
        blobs=racing,
        clock=clock,
        schedule=CRLSchedule(base_url=BASE_URL),
        authorities=[CRLAuthority(chain.authority_id, chain.ca, chain.ca_signer)],
    )
    fast = _publisher(chain, store, blobs, clock)
    fast.publish()  # number 1 is on disk

    # slow draws number 2, reads generation 1; fast then publishes number 3;
    # slow's conditional write must fail, and on re-read it must stand down.
    racing.before_write.append(lambda: fast.publish())
    [result] = slow.publish()
    assert result.number == 2 and result.generation is None and result.superseded_by == 3
    assert stored_crl_number(blobs.read("crl/intermediate.crl").data) == 3  # type: ignore[union-attr]

    # and a newer publisher that loses the precondition race retries and wins
    racing.before_write.append(
        lambda: blobs.write(
            "crl/intermediate.crl",
            b"corrupt",
            content_type=CRL_CONTENT_TYPE,
            if_generation_match=blobs.read("crl/intermediate.crl").generation,
        )
    )  # type: ignore[union-attr]
    [result] = slow.publish()
    assert result.number == 4 and result.generation is not None
    assert stored_crl_number(blobs.read("crl/intermediate.crl").data) == 4  # type: ignore[union-attr]


def test_concurrent_publishers_never_regress(tmp_path: Path) -> None:
    chain = make_chain()
    store = MemoryStore()
    for i in range(50):
        _revoke(store, chain, 5000 + i, not_after=T0 + dt.timedelta(days=1))
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        reader = LocalBlobStore(root=tmp_path / "blobs", fsync=False)
        while not stop.is_set():
            blob = reader.read("crl/intermediate.crl")
            if blob is not None:
                number = stored_crl_number(blob.data)
                assert number is not None
                seen.append(number)

    def run() -> None:
        # each worker has its own blob-store object, as separate instances would
        pub = _publisher(
            chain, store, LocalBlobStore(root=tmp_path / "blobs", fsync=False), FixedClock(T0)
        )
        for _ in range(15):
            pub.publish()

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=run) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    watcher.join()
    final = stored_crl_number(
        LocalBlobStore(root=tmp_path / "blobs").read("crl/intermediate.crl").data
    )  # type: ignore[union-attr]
    assert final == 60  # the highest number drawn is the one that stays
    assert seen and seen == sorted(seen)  # never went backwards


def test_schedule_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        CRLSchedule(
            base_url=BASE_URL, validity=dt.timedelta(hours=1), interval=dt.timedelta(days=1)
        )
    with pytest.raises(ConfigError):
        CRLSchedule(base_url="ftp://x")
    with pytest.raises(PreconditionFailed):  # the local backend really enforces generations
        LocalBlobStore(root=tmp_path).write("x", b"", content_type="a", if_generation_match=99)
