"""Cloud KMS behaviour that the contract cannot show: call counts, integrity, retries.

The real `google-cloud-kms` client talks gRPC to tests/fakes/kms_server.py,
which computes real CRC32C values and can fail or corrupt chosen calls.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.cloud import kms_v1

from shared.errors import BackendError, ConfigError, Unavailable
from shared.keys.adapter import as_private_key
from shared.keys.base import KeyType
from shared.keys.cloudkms import CloudKMS, parse_uri
from shared.retry import RetryPolicy
from tests.fakes.kms_server import FakeKMS, insecure_client, serve_fake_kms

RING = "projects/cirrus-test/locations/europe-west1/keyRings/unit"
_ids = itertools.count()


class FakeTime:
    """Monotonic clock + sleep for RetryPolicy, so deadlines pass without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def served() -> Iterator[tuple[FakeKMS, str]]:
    with serve_fake_kms() as pair:
        yield pair


@pytest.fixture
def fake(served: tuple[FakeKMS, str]) -> FakeKMS:
    return served[0]


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def kms(served: tuple[FakeKMS, str], time_: FakeTime) -> CloudKMS:
    policy = RetryPolicy(deadline=3.0, initial_delay=0.1, max_delay=1.0, jitter=0.0,
                         sleep=time_.sleep, clock=time_.clock)  # fmt: skip
    return CloudKMS(client=insecure_client(served[1]), retry=policy, sleep=time_.sleep)


def _seeded(fake: FakeKMS, algorithm: str = "EC_SIGN_P256_SHA256") -> str:
    return "cloudkms:" + fake.add_key(f"{RING}/cryptoKeys/seed{next(_ids)}", algorithm)


def _issue(signer: object) -> x509.Certificate:
    key = as_private_key(signer)  # type: ignore[arg-type]
    public = key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cirrus CA")])
    leaf = ec.generate_private_key(ec.SECP256R1()).public_key()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(leaf)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=24))
        .sign(key, hashes.SHA256())
    )
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    return cert


# ---- call counting -------------------------------------------------------------------------


def test_one_asymmetric_sign_per_certificate_and_public_key_fetched_once(
    kms: CloudKMS, fake: FakeKMS
) -> None:
    uri = _seeded(fake)
    signer = kms.signer(uri)
    for _ in range(5):
        _issue(signer)
    again = kms.signer(uri)  # same manager instance: cached public key
    _issue(again)
    assert fake.calls["AsymmetricSign"] == 6
    assert fake.calls["GetPublicKey"] == 1
    assert set(fake.calls) == {"AsymmetricSign", "GetPublicKey"}


def test_direct_sign_is_one_call(kms: CloudKMS, fake: FakeKMS) -> None:
    signer = kms.signer(_seeded(fake, "RSA_SIGN_PKCS1_2048_SHA256"))
    before = fake.calls["AsymmetricSign"]
    signer.sign(b"x")
    assert fake.calls["AsymmetricSign"] == before + 1


# ---- transient errors ----------------------------------------------------------------------


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED])
def test_transient_errors_are_retried_with_backoff(
    kms: CloudKMS, fake: FakeKMS, time_: FakeTime, code: grpc.StatusCode
) -> None:
    signer = kms.signer(_seeded(fake))
    fake.fail_next("AsymmetricSign", 2, code)
    cert = _issue(signer)
    assert cert is not None
    assert fake.calls["AsymmetricSign"] == 3
    assert time_.sleeps == [0.1, 0.2]


def test_transient_errors_on_public_key_fetch_are_retried(kms: CloudKMS, fake: FakeKMS) -> None:
    uri = _seeded(fake)
    fake.fail_next("GetPublicKey", 1)
    kms.signer(uri)
    assert fake.calls["GetPublicKey"] == 2


def test_persistent_unavailability_gives_up_at_the_deadline(
    kms: CloudKMS, fake: FakeKMS, time_: FakeTime
) -> None:
    signer = kms.signer(_seeded(fake))
    fake.fail_next("AsymmetricSign", 1000)
    with pytest.raises(Unavailable) as info:
        signer.sign(b"x")
    assert isinstance(info.value.__cause__, BackendError)
    assert 3 <= fake.calls["AsymmetricSign"] < 20
    assert sum(time_.sleeps) < 3.0


def test_permanent_errors_are_not_retried(kms: CloudKMS, fake: FakeKMS) -> None:
    signer = kms.signer(_seeded(fake))
    fake.fail_next("AsymmetricSign", 1, grpc.StatusCode.PERMISSION_DENIED)
    with pytest.raises(BackendError) as info:
        signer.sign(b"x")
    assert not info.value.transient
    assert fake.calls["AsymmetricSign"] == 1
    assert "injected" not in str(info.value)  # server detail stays out of our message


# ---- integrity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "what", ["signature_crc32c", "verified_digest_crc32c", "signature", "name"]
)
def test_corrupted_sign_response_is_detected_and_retried(
    kms: CloudKMS, fake: FakeKMS, what: str
) -> None:
    signer = kms.signer(_seeded(fake))
    fake.corrupt_next(what, 1)
    cert = _issue(signer)  # verifies: the corrupted answer was never used
    assert cert is not None
    assert fake.calls["AsymmetricSign"] == 2


def test_corruption_that_persists_never_yields_a_signature(kms: CloudKMS, fake: FakeKMS) -> None:
    signer = kms.signer(_seeded(fake))
    fake.corrupt_next("signature_crc32c", 1000)
    with pytest.raises(Unavailable) as info:
        signer.sign(b"x")
    cause = info.value.__cause__
    assert isinstance(cause, BackendError) and "integrity" in str(cause)


def test_corrupted_public_key_checksum_is_retried(kms: CloudKMS, fake: FakeKMS) -> None:
    uri = _seeded(fake)
    fake.corrupt_next("pem_crc32c", 1)
    signer = kms.signer(uri)
    assert fake.calls["GetPublicKey"] == 2
    _issue(signer)


def test_ed25519_sends_data_with_crc(kms: CloudKMS, fake: FakeKMS) -> None:
    signer = kms.signer(_seeded(fake, "EC_SIGN_ED25519"))
    signature = signer.sign(b"message")
    signer.public_key().verify(signature, b"message")  # type: ignore[call-arg]
    fake.corrupt_next("verified_digest_crc32c", 1)  # clears verified_data_crc32c too
    signer.sign(b"message")
    assert fake.calls["AsymmetricSign"] == 3


# ---- key creation --------------------------------------------------------------------------


def test_create_key_makes_the_key_ring_and_uses_protection_level(
    kms: CloudKMS, fake: FakeKMS
) -> None:
    ring = f"projects/p/locations/global/keyRings/new{next(_ids)}"
    hsm = kms.create_key(f"cloudkms:{ring}/cryptoKeys/root", KeyType.EC_P384)
    soft = kms.create_key(
        f"cloudkms:{ring}/cryptoKeys/int/cryptoKeyVersions/1;protection-level=SOFTWARE",
        KeyType.EC_P256,
    )
    assert fake.calls["CreateKeyRing"] == 1
    assert fake.versions[hsm.name].protection_level == kms_v1.ProtectionLevel.HSM
    assert fake.versions[soft.name].protection_level == kms_v1.ProtectionLevel.SOFTWARE
    assert fake.versions[hsm.name].algorithm == "EC_SIGN_P384_SHA384"


def test_create_key_waits_for_hsm_generation(kms: CloudKMS, fake: FakeKMS, time_: FakeTime) -> None:
    fake.pending_polls = 2
    signer = kms.create_key(f"cloudkms:{RING}/cryptoKeys/slow{next(_ids)}", KeyType.EC_P256)
    assert fake.calls["GetCryptoKeyVersion"] == 3
    assert time_.sleeps == [1.0, 1.0]
    _issue(signer)


def test_create_key_rejects_other_versions(kms: CloudKMS) -> None:
    with pytest.raises(ConfigError):
        kms.create_key(f"cloudkms:{RING}/cryptoKeys/k/cryptoKeyVersions/2", KeyType.EC_P256)


def test_signer_needs_a_version(kms: CloudKMS) -> None:
    with pytest.raises(ConfigError):
        kms.signer(f"cloudkms:{RING}/cryptoKeys/k")


def test_endpoint_constructor_builds_a_working_client(served: tuple[FakeKMS, str]) -> None:
    fake, address = served
    kms = CloudKMS(endpoint=address, insecure=True)
    _issue(kms.signer(_seeded(fake)))


# ---- URI parsing ---------------------------------------------------------------------------


def test_parse_uri() -> None:
    key = parse_uri(
        "cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3"
        ";protection-level=software"
    )
    assert key.key_ring == "projects/p/locations/l/keyRings/r"
    assert key.crypto_key == "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    assert key.version == 3 and key.protection_level == "SOFTWARE"
    assert key.version_name() == f"{key.crypto_key}/cryptoKeyVersions/3"


@pytest.mark.parametrize(
    "uri",
    [
        "cloudkms:",
        "softkms:path=/x",
        "cloudkms:projects/p/locations/l/keyRings/r",
        "cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/0",
        "cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/extra",
        "cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/k;protection-level=CLOUD",
        "cloudkms:projects/p/locations/l/keyRings/r/cryptoKeys/k;bogus=1",
    ],
)
def test_parse_uri_rejects(uri: str) -> None:
    with pytest.raises(ConfigError):
        parse_uri(uri)
