"""The delegated OCSP responder certificate: profile, rotation, races, key change, responder use."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import ConfigError
from shared.keys.softkms import SoftSigner
from shared.store.memory import MemoryStore
from shared.store.sqlite import SQLiteStore
from shared.validation.ocsp import OCSPAuthority, OCSPResponder
from shared.validation.responder_cert import (
    COLLECTION,
    OCSP_NOCHECK,
    DelegatedResponder,
    ResponderRotator,
    issue_responder_certificate,
)
from shared.validation.serial_index import StoreSerials
from shared.x509.profile import Issuer
from tests.helpers import pkilint_errors
from tests.unit.validation.va_pki import T0, World, make_chain

HOURS_72 = dt.timedelta(hours=72)


def _issuer() -> tuple[Issuer, x509.Certificate]:
    chain = make_chain()
    return Issuer.of(chain.ca, chain.ca_key), chain.ca


def _rotator(store: Any, clock: FixedClock, issuer: Issuer, key: ec.EllipticCurvePrivateKey) -> ResponderRotator:
    return ResponderRotator(
        documents=store,
        clock=clock,
        authority_id="intermediate",
        issuer=issuer,
        responder_key=key.public_key(),
        lifetime=HOURS_72,
    )


# --------------------------------------------------------------------------- profile


def test_issued_certificate_profile_is_exact_and_pkilint_clean() -> None:
    issuer, ca = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue_responder_certificate(issuer, public_key=key.public_key(), now=T0, lifetime=HOURS_72)

    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert (
        cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Cirrus Test Intermediate OCSP Responder"
    )
    assert cert.not_valid_after_utc == T0 + HOURS_72
    assert cert.not_valid_before_utc == T0 - dt.timedelta(minutes=5)
    assert cert.public_key() == key.public_key()

    exts = {e.oid: e for e in cert.extensions}
    assert set(exts) == {
        x509.KeyUsage.oid,
        x509.ExtendedKeyUsage.oid,
        OCSP_NOCHECK,
        x509.SubjectKeyIdentifier.oid,
        x509.AuthorityKeyIdentifier.oid,
    }
    ku = exts[x509.KeyUsage.oid]
    assert ku.critical
    assert ku.value == x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = exts[x509.ExtendedKeyUsage.oid]
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.OCSP_SIGNING]  # type: ignore[call-overload]
    nocheck = exts[OCSP_NOCHECK]
    assert not nocheck.critical and isinstance(nocheck.value, x509.OCSPNoCheck)
    aki = exts[x509.AuthorityKeyIdentifier.oid].value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest  # type: ignore[attr-defined]
    # the DER of the extension value is exactly NULL, as RFC 6960 s.4.2.2.2.1 defines it
    der = cert.public_bytes(serialization.Encoding.DER)
    assert bytes.fromhex("06092b0601050507300105") + bytes.fromhex("04020500") in der
    assert pkilint_errors(der) == []


# --------------------------------------------------------------------------- rotation


def test_rotation_at_half_life() -> None:
    issuer, _ = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    rotator = _rotator(store, clock, issuer, key)

    first = rotator.ensure()
    assert first.issued and first.reason == "missing"
    assert store.get_document(COLLECTION, "intermediate") is not None

    clock.advance(dt.timedelta(hours=35, minutes=59))
    again = rotator.ensure()
    assert not again.issued and again.certificate.serial_number == first.certificate.serial_number

    clock.set(T0 + dt.timedelta(hours=36))  # exactly half remains: not yet
    assert not rotator.ensure().issued
    clock.advance(dt.timedelta(seconds=1))  # less than half remains
    renewed = rotator.ensure()
    assert renewed.issued and renewed.reason == "half-life"
    assert renewed.certificate.serial_number != first.certificate.serial_number
    assert renewed.certificate.not_valid_after_utc == clock.now() + HOURS_72
    stored = store.get_document(COLLECTION, "intermediate")
    assert stored is not None and stored[1] == 2
    assert stored[0]["serial"] == str(renewed.certificate.serial_number)


def test_key_change_reissues_at_once() -> None:
    issuer, _ = _issuer()
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    old_key, new_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    first = _rotator(store, clock, issuer, old_key).ensure()
    clock.advance(dt.timedelta(minutes=1))  # far from half-life
    changed = _rotator(store, clock, issuer, new_key).ensure()
    assert changed.issued and changed.reason == "key changed"
    assert changed.certificate.public_key() == new_key.public_key()
    assert first.certificate.public_key() == old_key.public_key()


def test_certificate_from_another_ca_is_replaced() -> None:
    issuer, _ = _issuer()
    other, _ = _issuer()
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    key = ec.generate_private_key(ec.SECP256R1())
    _rotator(store, clock, other, key).ensure()
    replaced = _rotator(store, clock, issuer, key).ensure()
    assert replaced.issued and replaced.reason == "not from this CA"


class _RacingStore(MemoryStore):
    """A real store whose readers all wait for each other, so every rotator reads the same version."""

    def __init__(self, parties: int, clock: FixedClock) -> None:
        super().__init__(clock=clock)
        self.barrier = threading.Barrier(parties, timeout=10)
        self.waited: set[int] = set()

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        me = threading.get_ident()
        if me not in self.waited:
            self.waited.add(me)
            found = super().get_document(collection, doc_id)
            self.barrier.wait()  # nobody writes before everybody has read
            return found
        return super().get_document(collection, doc_id)


@pytest.mark.parametrize("existing", [False, True], ids=["create", "update"])
def test_concurrent_rotation_has_one_winner(existing: bool) -> None:
    issuer, _ = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(T0)
    parties = 4
    store = _RacingStore(parties, clock)
    if existing:  # an old certificate past half-life: every publisher wants to renew it
        seed = issue_responder_certificate(issuer, public_key=key.public_key(), now=T0 - dt.timedelta(hours=40))
        assert MemoryStore.create_document(
            store, COLLECTION, "intermediate", {"pem": seed.public_bytes(serialization.Encoding.PEM).decode()}
        )
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(_rotator(store, clock, issuer, key).ensure())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(parties)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sum(r.issued for r in results) == 1
    serials = {r.certificate.serial_number for r in results}
    assert len(serials) == 1
    stored = MemoryStore.get_document(store, COLLECTION, "intermediate")
    assert stored is not None and stored[0]["serial"] == str(serials.pop())
    assert stored[1] == (2 if existing else 1)


def test_concurrent_rotation_on_sqlite(tmp_path: Path) -> None:
    """Two stores on one SQLite file (two instances): the second publisher adopts the first's certificate."""
    issuer, _ = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(T0)
    a = SQLiteStore(tmp_path / "db.sqlite", clock=clock)
    b = SQLiteStore(tmp_path / "db.sqlite", clock=clock)
    try:
        ra, rb = _rotator(a, clock, issuer, key), _rotator(b, clock, issuer, key)
        found = b.get_document(COLLECTION, "intermediate")
        assert found is None
        won = ra.ensure()
        # b read "nothing" before a wrote; its create must lose
        assert not b.create_document(COLLECTION, "intermediate", {"pem": "x"})
        adopted = rb.ensure()
        assert won.issued and not adopted.issued
        assert adopted.certificate.serial_number == won.certificate.serial_number
    finally:
        a.close()
        b.close()


# --------------------------------------------------------------------------- responder side


def test_delegated_responder_cache_and_checks() -> None:
    issuer, ca = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    view = DelegatedResponder(
        documents=store, clock=clock, authority_id="intermediate", ca_certificate=ca, responder_key=key.public_key()
    )
    covering = T0 + dt.timedelta(hours=24)
    assert view.current(covering) is None  # nothing published yet
    rotator = _rotator(store, clock, issuer, key)
    first = rotator.ensure().certificate
    assert view.current(covering) is None  # retry interval (30 s) not over
    clock.advance(dt.timedelta(seconds=30))
    assert view.current(clock.now() + dt.timedelta(hours=24)) == first
    # a response that would outlive the certificate is not signed with it
    assert view.current(first.not_valid_after_utc + dt.timedelta(seconds=1)) is None

    # after a renewal the cached one is served until the recheck interval passes
    clock.set(T0 + dt.timedelta(hours=37))
    assert view.current(clock.now() + dt.timedelta(hours=24)) == first  # re-read: unchanged
    second = rotator.ensure().certificate
    assert view.current(clock.now() + dt.timedelta(hours=24)) == first
    clock.advance(dt.timedelta(minutes=5))
    assert view.current(clock.now() + dt.timedelta(hours=24)) == second

    # a certificate for another key (key change being rolled out) is refused; the last good one stays
    other = ec.generate_private_key(ec.SECP256R1())
    _rotator(store, clock, issuer, other).ensure()
    clock.advance(dt.timedelta(minutes=5))
    assert view.current(clock.now() + dt.timedelta(hours=24)) == second


def test_delegated_responder_rereads_in_last_quarter() -> None:
    issuer, ca = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    view = DelegatedResponder(
        documents=store,
        clock=clock,
        authority_id="intermediate",
        ca_certificate=ca,
        responder_key=key.public_key(),
        recheck=dt.timedelta(hours=10),
        retry=dt.timedelta(seconds=30),
    )
    rotator = _rotator(store, clock, issuer, key)
    first = rotator.ensure().certificate
    clock.set(T0 + dt.timedelta(hours=50))  # 22h left: not yet the last quarter (18h01m)
    assert view.current(clock.now()) == first
    second = rotator.ensure().certificate  # past half-life: renewed in the store
    assert second != first
    clock.advance(dt.timedelta(minutes=1))
    assert view.current(clock.now()) == first  # within the 10h recheck: cached
    clock.set(T0 + dt.timedelta(hours=55))  # 17h left: last quarter, re-read after 30 s
    assert view.current(clock.now()) == second


def test_delegated_responder_keeps_last_good_when_store_fails() -> None:
    issuer, ca = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    cert = _rotator(store, clock, issuer, key).ensure().certificate
    view = DelegatedResponder(
        documents=store, clock=clock, authority_id="intermediate", ca_certificate=ca, responder_key=key.public_key()
    )
    assert view.current(T0) == cert
    store.update_document(COLLECTION, "intermediate", {"pem": "-----BEGIN garbage"}, expected_version=1)
    clock.advance(dt.timedelta(minutes=6))
    assert view.current(clock.now()) == cert


def _responder(world: World, key: ec.EllipticCurvePrivateKey, *, ca_key: bool) -> OCSPResponder:
    view = DelegatedResponder(
        documents=world.store,
        clock=world.clock,
        authority_id="intermediate",
        ca_certificate=world.chain.ca,
        responder_key=key.public_key(),
    )
    return OCSPResponder(
        authorities=[
            OCSPAuthority(
                "intermediate",
                world.chain.ca,
                world.chain.ca_signer if ca_key else None,
                responder_signer=SoftSigner(key),
                responder_certificates=view,
            )
        ],
        crls=world.crls,
        issued=StoreSerials(world.store),
        clock=world.clock,
    )


def test_responder_signs_with_delegated_certificate(tmp_path: Path) -> None:
    world = World(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = world.issue()
    world.publisher.publish()
    no_ca = _responder(world, key, ca_key=False)
    with_ca = _responder(world, key, ca_key=True)

    # no delegated certificate yet: tryLater without the CA key, CA-signed with it
    assert no_ca.respond(world.request(leaf)).status == "try_later"
    fallback = ocsp.load_der_ocsp_response(with_ca.respond(world.request(leaf)).der)
    assert fallback.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert fallback.certificates == []
    world.chain.ca.public_key().verify(  # type: ignore[call-arg]
        fallback.signature, fallback.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )

    issued = ResponderRotator(
        documents=world.store,
        clock=world.clock,
        authority_id="intermediate",
        issuer=Issuer.of(world.chain.ca, world.chain.ca_key),
        responder_key=key.public_key(),
        lifetime=dt.timedelta(days=15),  # the World's CRLs are valid for 7 days
    ).ensure()
    world.clock.advance(dt.timedelta(seconds=31))  # past the responders' retry interval
    for responder in (no_ca, with_ca):
        resp = ocsp.load_der_ocsp_response(responder.respond(world.request(leaf, nonce=b"n" * 16)).der)
        assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert resp.certificates == [issued.certificate]
        assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
        key.public_key().verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))

    # the certificate expires before the CRL's nextUpdate and nobody renewed it: fall back / tryLater
    world.clock.set(issued.certificate.not_valid_after_utc - dt.timedelta(hours=1))
    world.publisher.publish()
    assert no_ca.respond(world.request(leaf)).status == "try_later"
    assert ocsp.load_der_ocsp_response(with_ca.respond(world.request(leaf)).der).certificates == []


def test_ca_key_fallback_is_opened_by_the_first_answer_no_delegated_certificate_covers(tmp_path: Path) -> None:
    """A responder with a delegated certificate never opens the CA key; without one, the first answer
    opens it (once) and signs with it, or says tryLater if this instance has no CA key."""
    world = World(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = world.issue()
    world.publisher.publish()
    opened: list[str] = []

    def responder(ca_key: bool) -> OCSPResponder:
        def fallback() -> SoftSigner | None:
            opened.append("ca" if ca_key else "none")
            return world.chain.ca_signer if ca_key else None

        view = DelegatedResponder(documents=world.store, clock=world.clock, authority_id="intermediate",
                                  ca_certificate=world.chain.ca, responder_key=key.public_key())  # fmt: skip
        authority = OCSPAuthority("intermediate", world.chain.ca, None, responder_signer=SoftSigner(key),
                                  responder_certificates=view, ca_key_fallback=fallback)  # fmt: skip
        return OCSPResponder(authorities=[authority], crls=world.crls, issued=StoreSerials(world.store),
                             clock=world.clock)  # fmt: skip

    with_ca, no_ca = responder(True), responder(False)
    assert opened == []  # building a responder opens no CA key
    fallback = ocsp.load_der_ocsp_response(with_ca.respond(world.request(leaf)).der)
    assert fallback.certificate_status == ocsp.OCSPCertStatus.GOOD and fallback.certificates == []
    world.chain.ca.public_key().verify(  # type: ignore[call-arg]
        fallback.signature, fallback.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )
    assert no_ca.respond(world.request(leaf)).status == "try_later"
    with_ca.respond(world.request(leaf, nonce=b"a" * 16))
    no_ca.respond(world.request(leaf, nonce=b"b" * 16))
    assert opened == ["ca", "none"]  # once each, whatever it gave

    covered = responder(True)
    issued = ResponderRotator(
        documents=world.store, clock=world.clock, authority_id="intermediate",
        issuer=Issuer.of(world.chain.ca, world.chain.ca_key), responder_key=key.public_key(),
        lifetime=dt.timedelta(days=15),
    ).ensure()  # fmt: skip
    resp = ocsp.load_der_ocsp_response(covered.respond(world.request(leaf)).der)
    assert resp.certificates == [issued.certificate]
    assert opened == ["ca", "none"]  # the delegated certificate answered: the CA key stayed closed
    with pytest.raises(ValueError, match="fallback"):  # a fallback beside a CA signer is a wiring mistake
        OCSPResponder(authorities=[OCSPAuthority("intermediate", world.chain.ca, world.chain.ca_signer,
                                                 ca_key_fallback=lambda: None)],
                      crls=world.crls, issued=StoreSerials(world.store), clock=world.clock)  # fmt: skip


# --------------------------------------------------------------------------- config and init


def test_config_ocsp_block_and_env_override(tmp_path: Path) -> None:
    raw = {
        "root": "certs/root_ca.crt",
        "crt": "certs/intermediate_ca.crt",
        "key": "softkms:path=secrets/intermediate_ca_key",
        "ocsp": {"responderKey": "softkms:path=secrets/ocsp_responder_key", "responderLifetime": "96h"},
    }
    s = Settings.from_mapping(raw, base_dir=tmp_path)
    assert s.ocsp.responder_key == f"softkms:path={tmp_path.resolve()}/secrets/ocsp_responder_key"
    assert s.ocsp.responder_lifetime == dt.timedelta(hours=96)
    assert (
        Settings.from_mapping({k: v for k, v in raw.items() if k != "ocsp"}, base_dir=tmp_path).ocsp.responder_key == ""
    )
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(raw))
    env = {
        "CIRRUS_CONFIG": str(cfg),
        "CIRRUS_OCSP_KEY": "cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/o/cryptoKeyVersions/1",
    }
    assert Settings.from_env(env).ocsp.responder_key == env["CIRRUS_OCSP_KEY"]
    with pytest.raises(ConfigError, match=r"twice crl\.cacheDuration"):
        Settings.from_mapping({**raw, "ocsp": {"responderKey": "/k", "responderLifetime": "36h"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError):
        Settings.from_mapping({**raw, "ocsp": {"responderLifetime": "soon"}}, base_dir=tmp_path)


def test_init_creates_responder_key(authority_dir: Path) -> None:
    config = json.loads((authority_dir / "config.json").read_text())
    assert config["ocsp"] == {"responderKey": "softkms:path=secrets/ocsp_responder_key", "responderLifetime": "72h"}
    path = authority_dir / "secrets" / "ocsp_responder_key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    settings = Settings.load(authority_dir / "config.json")
    assert settings.ocsp.responder_key == f"softkms:path={path.resolve()}"


def test_rotator_mirrors_to_the_bucket_and_responders_read_it(tmp_path: Path) -> None:
    from shared.blobs.local import LocalBlobStore
    from shared.validation.responder_cert import BlobDocuments, blob_name

    issuer, ca = _issuer()
    key = ec.generate_private_key(ec.SECP256R1())
    clock = FixedClock(T0)
    store = MemoryStore(clock=clock)
    bucket = LocalBlobStore(root=tmp_path / "blobs", fsync=False)
    rotator = ResponderRotator(
        documents=store,
        clock=clock,
        authority_id="intermediate",
        issuer=issuer,
        responder_key=key.public_key(),
        mirror=bucket,
    )
    view = DelegatedResponder(
        documents=BlobDocuments(blobs=bucket),
        clock=clock,
        authority_id="intermediate",
        ca_certificate=ca,
        responder_key=key.public_key(),
    )
    first = rotator.ensure().certificate
    blob = bucket.read(blob_name("intermediate"))
    assert blob is not None and json.loads(blob.data)["serial"] == str(first.serial_number)
    assert view.current(T0 + dt.timedelta(hours=24)) == first
    rotator.ensure()  # unchanged: no rewrite
    again = bucket.read(blob_name("intermediate"))
    assert again is not None and again.generation == blob.generation
    clock.advance(dt.timedelta(hours=37))
    second = rotator.ensure().certificate
    assert second != first
    assert view.current(clock.now() + dt.timedelta(hours=24)) == second
    # a damaged bucket copy is refused (last good kept) and repaired by the next publication
    bucket.write(blob_name("intermediate"), b"{not json", content_type="application/json", if_generation_match=None)
    clock.advance(dt.timedelta(minutes=6))
    assert view.current(clock.now()) == second
    rotator.ensure()
    fixed = bucket.read(blob_name("intermediate"))
    assert fixed is not None and json.loads(fixed.data)["serial"] == str(second.serial_number)
