"""FirestoreStore under faults, on the real Firestore emulator.

Two kinds of fault:

- A gRPC interceptor between the real SDK and the emulator (not a mock: every
  call that is let through is served by the emulator). It can fail a call
  before it is sent (an outage), or let it reach the emulator and then drop
  the answer (a lost reply: the write happened, the client saw UNAVAILABLE),
  which is the case that duplicates or falsely refuses writes if retries are
  naive.
- The emulator itself stopped in the middle of the test and started again.

In every case a call either succeeds exactly once or raises `Unavailable`
with nothing written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from firestore_grpc import COMMIT, PROJECT, Faults, faulty_client

from shared.errors import Conflict, Unavailable
from shared.model import CertificateKind, CertificateRecord, Endpoint, Event, ProvisionerRef, Revocation
from shared.retry import RetryPolicy
from shared.store.firestore import FirestoreStore

pytestmark = pytest.mark.firestore

T0 = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
REPO = Path(__file__).resolve().parents[2]

FAST = {"initial_delay": 0.01, "max_delay": 0.05, "jitter": 0.0, "attempt_timeout": 2.0}


@pytest.fixture
def prefix(firestore_emulator_host: str) -> str:
    return f"f{uuid.uuid4().hex[:12]}_"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def store(prefix: str, faults: Faults) -> Iterator[FirestoreStore]:
    """A store whose client goes through `faults`; 1.5 s retry deadline."""
    s = FirestoreStore(prefix=prefix, client=faulty_client(faults), retry=RetryPolicy(deadline=1.5, **FAST))
    yield s
    s._client.close()


@pytest.fixture
def observer(prefix: str) -> Iterator[FirestoreStore]:
    """A second, healthy store on the same collections: what other instances see."""
    s = FirestoreStore(project=PROJECT, prefix=prefix, retry=RetryPolicy(deadline=10))
    yield s
    s.close()


def cert(serial: str, endpoint_id: str = "ep-1") -> CertificateRecord:
    return CertificateRecord(
        serial=serial,
        authority_id="auth-1",
        kind=CertificateKind.X509,
        der=b"\x30\x82" + serial.encode(),
        not_before=T0,
        not_after=T0 + 24 * HOUR,
        provisioner=ProvisionerRef(id="prov-1", name="admin", type="JWK"),
        endpoint_id=endpoint_id,
        subject_key="host.example.com",
        common_name="host.example.com",
        sans=("host.example.com",),
        issued_at=T0,
    )


def endpoint(endpoint_id: str = "ep-1") -> Endpoint:
    return Endpoint(
        id=endpoint_id,
        authority_id="auth-1",
        provisioner_id="prov-1",
        subject_key="host.example.com",
        name="host",
        created_at=T0,
    )


def event(event_id: str) -> Event:
    return Event(
        id=event_id,
        type="dev.cirrus.certificate.issued",
        source="cirrus-ca",
        subject=event_id,
        time=T0,
        data={"serial": event_id},
    )


# --------------------------------------------------------------------------- transient faults are retried


def test_claim_retries_through_failed_sends(store: FirestoreStore, faults: Faults, observer: FirestoreStore) -> None:
    faults.fail_before[COMMIT] = 2
    assert store.claim("jti", "k1", T0 + HOUR) is True
    assert faults.attempted.count(COMMIT) == 3
    assert observer.claim("jti", "k1", T0 + HOUR) is False


def test_claim_whose_reply_was_lost_is_still_ours(
    store: FirestoreStore, faults: Faults, observer: FirestoreStore
) -> None:
    # The create reached the emulator; the retry meets "already exists" and must
    # recognise its own write instead of calling the token "already used".
    faults.lose_answer[COMMIT] = 1
    assert store.claim("jti", "k2", T0 + HOUR) is True
    assert faults.delivered.count(COMMIT) == 2
    # ...and nobody else can claim it, nor can this store a second time.
    assert observer.claim("jti", "k2", T0 + HOUR) is False
    assert store.claim("jti", "k2", T0 + HOUR) is False


def test_record_issuance_whose_reply_was_lost_is_written_once(
    store: FirestoreStore, faults: Faults, observer: FirestoreStore
) -> None:
    faults.lose_answer[COMMIT] = 1
    store.record_issuance(cert("100"), new_endpoint=endpoint(), events=[event("e-100")])
    assert observer.get_certificate("100") == cert("100")
    assert observer.get_endpoint("ep-1") == endpoint()
    assert [c.serial for c in observer.list_certificates_by_endpoint("ep-1")] == ["100"]
    assert [e.id for e in observer.list_events()] == ["e-100"]
    # A genuinely different issuance with the same serial still conflicts.
    with pytest.raises(Conflict):
        store.record_issuance(cert("100"))


def test_revoke_and_documents_whose_reply_was_lost(
    store: FirestoreStore, faults: Faults, observer: FirestoreStore
) -> None:
    revocation = Revocation(serial="7", authority_id="auth-1", revoked_at=T0, not_after=T0 + HOUR)
    faults.lose_answer[COMMIT] = 1
    store.revoke(revocation, events=[event("rev-7")])
    assert observer.get_revocation("7") == revocation
    assert [e.id for e in observer.list_events()] == ["rev-7"]

    faults.lose_answer[COMMIT] = 1
    assert store.create_document("orders", "o1", {"status": "pending"}) is True
    faults.lose_answer[COMMIT] = 1
    assert store.update_document("orders", "o1", {"status": "ready"}, expected_version=1) is True
    assert observer.get_document("orders", "o1") == ({"status": "ready"}, 2)
    # The version check still holds for everyone else.
    assert observer.update_document("orders", "o1", {"status": "x"}, expected_version=1) is False


def test_append_events_whose_reply_was_lost_logs_each_once(
    store: FirestoreStore, faults: Faults, observer: FirestoreStore
) -> None:
    faults.lose_answer[COMMIT] = 1
    store.append_events([event("a"), event("b")])
    assert [e.id for e in observer.list_events()] == ["a", "b"]


def test_counter_whose_reply_was_lost_never_repeats_a_value(store: FirestoreStore, faults: Faults) -> None:
    assert store.next_value("crl") == 1
    faults.lose_answer[COMMIT] = 1
    # The lost increment was applied: the number is skipped, never handed out twice.
    assert store.next_value("crl") == 3
    assert store.next_value("crl") == 4


def test_reads_are_retried(store: FirestoreStore, faults: Faults, observer: FirestoreStore) -> None:
    observer.record_issuance(cert("5"))
    faults.fail_before["/google.firestore.v1.Firestore/BatchGetDocuments"] = 2
    faults.fail_before["/google.firestore.v1.Firestore/RunQuery"] = 2
    assert store.get_certificate("5") == cert("5")
    assert [c.serial for c in store.list_certificates_by_endpoint("ep-1")] == ["5"]


# --------------------------------------------------------------------------- outages end in Unavailable, nothing written


def test_claim_during_outage_raises_unavailable_after_the_deadline(
    store: FirestoreStore, faults: Faults, observer: FirestoreStore
) -> None:
    faults.down = True
    started = time.monotonic()
    with pytest.raises(Unavailable) as info:
        store.claim("jti", "k3", T0 + HOUR)
    elapsed = time.monotonic() - started
    assert 1.0 < elapsed < 3.0, elapsed  # deadline 1.5 s
    assert faults.attempted.count(COMMIT) > 3  # it did retry
    assert info.value.status == 503 and "injected" not in info.value.detail
    faults.down = False
    # Nothing was claimed: the token is still usable once the backend is back.
    assert observer.claim("jti", "k3", T0 + HOUR) is True


def test_record_issuance_during_outage_writes_nothing(
    store: FirestoreStore, faults: Faults, observer: FirestoreStore
) -> None:
    faults.fail_before[COMMIT] = 10_000  # every write fails; reads still work
    with pytest.raises(Unavailable):
        store.record_issuance(cert("200", "ep-2"), new_endpoint=endpoint("ep-2"), events=[event("e-200")])
    assert faults.delivered.count(COMMIT) == 0
    assert observer.get_certificate("200") is None
    assert observer.get_endpoint("ep-2") is None
    assert observer.list_events() == []
    # Once healed, the same issuance goes through exactly once.
    faults.fail_before.clear()
    store.record_issuance(cert("200", "ep-2"), new_endpoint=endpoint("ep-2"), events=[event("e-200")])
    assert observer.get_certificate("200") == cert("200", "ep-2")
    assert [e.id for e in observer.list_events()] == ["e-200"]


def test_issuance_to_existing_endpoint_is_one_commit_and_keeps_the_endpoint(
    store: FirestoreStore, faults: Faults, observer: FirestoreStore
) -> None:
    """The endpoint exists: the transaction reads it, so the certificate goes in the one commit
    (no "exists" refusal and second commit, which the batch of earlier releases needed)."""
    observer.record_issuance(cert("300", "ep-3"), new_endpoint=endpoint("ep-3"))
    faults.allow_then_fail[COMMIT] = 1  # one commit goes through, every later one fails unsent
    store.record_issuance(cert("301", "ep-3"), new_endpoint=dataclasses.replace(endpoint("ep-3"), name="other"))
    assert faults.delivered.count(COMMIT) == 1
    assert observer.get_certificate("301") == cert("301", "ep-3")
    assert observer.get_endpoint("ep-3") == endpoint("ep-3")
    assert [c.serial for c in observer.list_certificates_by_endpoint("ep-3")] == ["300", "301"]


# --------------------------------------------------------------------------- the emulator itself stops


class PrivateEmulator:
    """A Firestore emulator of one test's own, started and stopped by infra/emulators.sh."""

    def __init__(self, state_dir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self._env = {**os.environ, "CIRRUS_EMULATOR_DIR": str(state_dir), "FIRESTORE_PORT": str(self.port)}

    def _run(self, action: str) -> None:
        script = str(REPO / "infra" / "emulators.sh")
        subprocess.run([script, action, "firestore"], env=self._env, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture
def private_emulator(tmp_path: Path, firestore_emulator_host: str) -> Iterator[PrivateEmulator]:
    emulator = PrivateEmulator(tmp_path / "emulators")
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.mark.slow
def test_emulator_stopped_mid_test(private_emulator: PrivateEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", private_emulator.host)
    store = FirestoreStore(project=PROJECT, prefix="stop_", retry=RetryPolicy(deadline=2.0, **FAST))
    try:
        # A freshly started emulator's first answer can take seconds on a loaded machine: the set-up
        # call gets a patient budget; only the calls made while it is down are held to 2 s.
        warm = FirestoreStore(project=PROJECT, prefix="stop_", client=store._client, retry=RetryPolicy(deadline=30.0))
        assert warm.claim("jti", "before", T0 + HOUR) is True

        private_emulator.stop()
        started = time.monotonic()
        with pytest.raises(Unavailable):
            store.claim("jti", "during", T0 + HOUR)
        with pytest.raises(Unavailable):
            store.record_issuance(cert("400", "ep-4"), new_endpoint=endpoint("ep-4"), events=[event("e-400")])
        assert time.monotonic() - started < 10

        # Back on the same port (empty: the emulator keeps nothing in memory across
        # restarts). The failed calls left nothing behind, and the same client
        # reconnects by itself once its retry budget is long enough.
        private_emulator.start()
        patient = FirestoreStore(
            project=PROJECT, prefix="stop_", client=store._client, retry=RetryPolicy(deadline=30.0)
        )
        assert patient.get_certificate("400") is None
        assert patient.claim("jti", "during", T0 + HOUR) is True
        patient.record_issuance(cert("400", "ep-4"), new_endpoint=endpoint("ep-4"), events=[event("e-400")])
        assert patient.get_certificate("400") == cert("400", "ep-4")
        assert [e.id for e in patient.list_events()] == ["e-400"]
    finally:
        store.close()
