"""Which intermediate generation issues when (shared/rotation.py), the rotation record, the ARL reader."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.blobs.local import LocalBlobStore
from shared.clock import FixedClock
from shared.errors import BackendError, ConfigError
from shared.intermediate_revocation import (
    RevocationCeremonyError,
    RevokedIntermediates,
    arl_blob_name,
    revoke_intermediate,
)
from shared.keys.softkms import SoftKMS
from shared.rotation import IntermediateRotation
from shared.rotation_record import (
    Generation,
    activate,
    choose_active,
    config_generations,
    fingerprint,
    stage,
)
from shared.store.memory import MemoryStore

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _ca(name: str, issuer: tuple[x509.Name, Any] | None = None, ca: bool = True) -> tuple[x509.Certificate, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(T0 + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )  # fmt: skip
    return cert, key


def _gen(cert: x509.Certificate, *, base: bool = False, not_before: dt.datetime | None = None,
         activations: tuple[dt.datetime, ...] = ()) -> Generation:  # fmt: skip
    return Generation(chain=(cert,), key_uri="softkms:path=/x", crl_id=fingerprint(cert)[:8], not_before=not_before,
                      activations=activations, base=base)  # fmt: skip


@pytest.fixture(scope="module")
def three() -> list[x509.Certificate]:
    return [_ca(f"I{i}")[0] for i in range(3)]


def test_base_issues_until_a_switch_time_passes(three: list[x509.Certificate]) -> None:
    base, scheduled = _gen(three[0], base=True), _gen(three[1], not_before=T0)
    assert choose_active([base, scheduled], T0 - dt.timedelta(seconds=1)) is base
    assert choose_active([base, scheduled], T0) is scheduled


def test_activation_switches_and_reactivating_the_base_rolls_back(three: list[x509.Certificate]) -> None:
    t1, t2 = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)
    staged = _gen(three[1], activations=(t1,))
    base = _gen(three[0], base=True, activations=(t2,))
    assert choose_active([base, staged], T0) is base
    assert choose_active([base, staged], t1) is staged
    assert choose_active([base, staged], t2) is base
    # A staged generation without a switch time or an activation never issues.
    assert choose_active([_gen(three[0], base=True), _gen(three[2])], t2).base


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.none() | st.integers(0, 100), st.lists(st.integers(0, 100), max_size=3)),
                min_size=1, max_size=3), st.integers(0, 100))  # fmt: skip
def test_the_latest_switch_time_not_in_the_future_wins(spec: list[tuple[int | None, list[int]]], at: int) -> None:
    certs = _PROPERTY_CERTS
    gens = [_gen(certs[0], base=True)] + [
        _gen(certs[i + 1], not_before=None if nb is None else T0 + dt.timedelta(minutes=nb),
             activations=tuple(T0 + dt.timedelta(minutes=a) for a in acts))
        for i, (nb, acts) in enumerate(spec)
    ]  # fmt: skip
    now = T0 + dt.timedelta(minutes=at)
    chosen = choose_active(gens, now)
    switch = chosen.switch_time(now)
    assert switch is not None and switch <= now
    for gen in gens:
        other = gen.switch_time(now)
        assert other is None or other <= switch
        times = [t for t in (gen.not_before, *gen.activations) if t is not None]
        assert (other is None) == (not gen.base and all(t > now for t in times))


_PROPERTY_CERTS = [_ca(f"P{i}")[0] for i in range(4)]


def test_stage_and_activate_are_recorded_once_each_and_read_back(three: list[x509.Certificate]) -> None:
    store = MemoryStore()
    root, root_key = _ca("Root")
    inter, _ = _ca("Next", issuer=(root.subject, root_key))
    assert stage(store, "a1", chain=[inter], key_uri="softkms:path=/k", not_before=None)
    assert not stage(store, "a1", chain=[inter], key_uri="softkms:path=/k", not_before=None)  # already there
    base = _gen(three[0], base=True)
    clock = FixedClock(T0)
    rotation = IntermediateRotation(authority_id="a1", base=base, documents=store, clock_now=clock.now, recheck=0)
    assert rotation.active().base
    activate(store, "a1", fp=fingerprint(inter), at=T0)
    assert rotation.active().certificate == inter
    assert rotation.active().crl_id == f"a1-{fingerprint(inter)[:16]}"


def test_concurrent_stagings_both_land(three: list[x509.Certificate]) -> None:
    store = MemoryStore()
    certs = [_ca(f"C{i}")[0] for i in range(6)]
    threads = [threading.Thread(target=stage, args=(store, "a1"),
                                kwargs={"chain": [c], "key_uri": "k", "not_before": None}) for c in certs]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = store.get_document("intermediates", "a1")
    assert found is not None and len(found[0]["staged"]) == 6


class _FlakyDocuments:
    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.fail = False
        self.reads = 0

    def get_document(self, collection: str, doc_id: str) -> Any:
        self.reads += 1
        if self.fail:
            raise BackendError("store unavailable", transient=True)
        return self.inner.get_document(collection, doc_id)

    def create_document(self, *a: Any, **k: Any) -> bool:
        return self.inner.create_document(*a, **k)

    def update_document(self, *a: Any, **k: Any) -> bool:
        return self.inner.update_document(*a, **k)


def test_the_record_is_reread_after_recheck_only_and_a_failed_read_keeps_the_last_view(
    three: list[x509.Certificate],
) -> None:
    docs = _FlakyDocuments(MemoryStore())
    ticks = [0.0]
    staged = three[1]
    stage(docs, "a1", chain=[staged], key_uri="k", not_before=None)
    docs.reads = 0
    rotation = IntermediateRotation(authority_id="a1", base=_gen(three[0], base=True), documents=docs,
                                    clock_now=FixedClock(T0).now, recheck=5.0, monotonic=lambda: ticks[0])  # fmt: skip
    assert rotation.active().base and docs.reads == 1
    activate(docs, "a1", fp=fingerprint(staged), at=T0)
    reads = docs.reads
    ticks[0] = 4.9
    assert rotation.active().base and docs.reads == reads  # cached: not re-read yet
    ticks[0] = 5.0
    assert rotation.active().certificate == staged
    docs.fail = True
    ticks[0] = 20.0
    assert rotation.active().certificate == staged  # the outage keeps the last view
    first = IntermediateRotation(authority_id="a1", base=_gen(three[0], base=True), documents=docs,
                                 clock_now=FixedClock(T0).now)  # fmt: skip
    with pytest.raises(BackendError):
        first.active()  # nothing to fall back on: the first read's failure is the caller's


def test_a_staged_chain_that_fails_verification_is_never_used(three: list[x509.Certificate]) -> None:
    store = MemoryStore()
    stage(store, "a1", chain=[three[1]], key_uri="k", not_before=T0)

    def refuse(gen: Generation) -> None:
        raise ConfigError("does not chain to the root")

    rotation = IntermediateRotation(authority_id="a1", base=_gen(three[0], base=True), documents=store,
                                    clock_now=FixedClock(T0).now, verify=refuse)  # fmt: skip
    assert [g.base for g in rotation.generations()] == [True]


def test_config_intermediates_are_read_and_malformed_ones_refused(tmp_path: Any, three: list[x509.Certificate]) -> None:
    from cryptography.hazmat.primitives import serialization

    (tmp_path / "next.crt").write_bytes(three[1].public_bytes(serialization.Encoding.PEM))
    gens = config_generations([{"crt": "next.crt", "key": "awskms:key-id=alias/x", "notBefore": "2026-12-02T00:00:00Z"}],
                              base_dir=tmp_path, authority_id="a1")  # fmt: skip
    assert gens[0].not_before == T0 + dt.timedelta(days=1) and gens[0].certificate == three[1]
    for bad, message in (({"crt": "next.crt"}, "needs crt"), ({"crt": "none.crt", "key": "k"}, "cannot read"),
                         ({"crt": "next.crt", "key": "k", "notBefore": "2026-12-02"}, "UTC offset"),
                         ({"crt": "next.crt", "key": "k", "notBefore": "soon"}, "RFC 3339")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            config_generations([bad], base_dir=tmp_path, authority_id="a1")
    with pytest.raises(ConfigError, match="must be a list"):
        config_generations({"crt": "x"}, base_dir=tmp_path, authority_id="a1")


def test_arl_revocation_is_published_verified_and_read_online(tmp_path: Any) -> None:
    kms = SoftKMS(password=b"pw")
    from shared.keys.base import KeyType

    root_signer = kms.create_key(f"softkms:path={tmp_path}/root", KeyType.EC_P256)
    from shared.ceremony import make_root

    root = make_root(root_signer, common_name="R", organization=None, days=30, now=T0)
    from shared.keys.adapter import as_private_key

    inter, _ = _ca("I", issuer=(root.subject, as_private_key(root_signer)))
    other_root, other_key = _ca("Other")
    stranger, _ = _ca("S", issuer=(other_root.subject, other_key))
    blobs = LocalBlobStore(root=tmp_path / "pub")
    ticks = [0.0]
    online = RevokedIntermediates(blobs=blobs, roots=[root], recheck=30, monotonic=lambda: ticks[0])
    assert not online.is_revoked(inter)
    with pytest.raises(RevocationCeremonyError, match="not issued by this root"):
        revoke_intermediate(root_signer=root_signer, root=root, intermediate=stranger, blobs=blobs, now=T0)
    published = revoke_intermediate(root_signer=root_signer, root=root, intermediate=inter, blobs=blobs, now=T0,
                                    reason_code=4)  # fmt: skip
    assert published.number == 1 and published.revoked_serials == (inter.serial_number,)
    assert not online.is_revoked(inter)  # within the recheck time the last view holds
    ticks[0] = 30
    assert online.is_revoked(inter)
    again = revoke_intermediate(root_signer=root_signer, root=root, intermediate=None, blobs=blobs, now=T0)
    assert again.number == 2 and again.revoked_serials == (inter.serial_number,)  # re-signed, still listed
    crl = x509.load_der_x509_crl(again.der)
    assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    entry = crl.get_revoked_certificate_by_serial_number(inter.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    # An ARL that the root did not sign is ignored online (and refused as a base for the next one).
    forged = revoke_intermediate(root_signer=root_signer, root=root, intermediate=None, blobs=LocalBlobStore(
        root=tmp_path / "other"), now=T0)  # fmt: skip
    tampered = bytearray(forged.der)
    tampered[-3] ^= 1
    current = blobs.read(arl_blob_name(root))
    assert current is not None
    blobs.write(arl_blob_name(root), bytes(tampered), content_type="application/pkix-crl",
                if_generation_match=current.generation)  # fmt: skip
    ticks[0] = 60
    assert not online.is_revoked(inter)
    with pytest.raises(RevocationCeremonyError, match="not signed by this root"):
        revoke_intermediate(root_signer=root_signer, root=root, intermediate=None, blobs=blobs, now=T0)


def test_a_generation_whose_key_cannot_be_opened_leaves_issuance_with_the_previous_one(
    three: list[x509.Certificate], caplog: pytest.LogCaptureFixture
) -> None:
    from shared.rotation import RotatingIssuer

    store = MemoryStore()
    rotation = IntermediateRotation(authority_id="a1", base=_gen(three[0], base=True), documents=store,
                                    clock_now=FixedClock(T0).now, recheck=0)  # fmt: skip

    def build(gen: Generation) -> str:
        if not gen.base:
            raise ConfigError("permission denied on the key")
        return "base-authority"

    issuing = RotatingIssuer(rotation, build)
    with pytest.raises(ConfigError):
        RotatingIssuer(rotation, lambda g: build(_gen(three[1]))).current()  # nothing to fall back on
    assert issuing.current() == "base-authority"
    stage(store, "a1", chain=[three[1]], key_uri="k", not_before=T0)
    assert rotation.active().certificate == three[1]
    assert issuing.current() == "base-authority"
    assert "cannot issue here" in caplog.text
