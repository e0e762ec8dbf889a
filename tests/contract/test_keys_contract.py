"""One contract for every KeyManager: softkms (files) and cloudkms (real client, fake KMS).

Whatever the backend, a CA key must: be created once and never overwritten,
reopen by URI to the same public key, produce signatures cryptography verifies,
and drive cryptography's CertificateBuilder through `as_private_key` so the
certificate verifies. Cloud KMS runs through the real `google-cloud-kms` client
against tests/fakes/kms_server.py over loopback gRPC.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from shared.errors import ConfigError
from shared.keys.adapter import as_private_key
from shared.keys.base import KeyManager, KeyType, PublicKey, Signer
from shared.keys.cloudkms import CloudKMS
from shared.keys.softkms import SoftKMS
from shared.retry import RetryPolicy
from tests.fakes.kms_server import FakeKMS, insecure_client, serve_fake_kms

_ids = itertools.count()


@dataclass
class Backend:
    """A KeyManager under test plus how to name keys and reopen it."""

    manager: KeyManager
    new_uri: Callable[[], str]
    reopen: Callable[[], KeyManager]
    missing_uri: str


@pytest.fixture(scope="module")
def kms_address() -> Iterator[tuple[FakeKMS, str]]:
    with serve_fake_kms() as served:
        yield served


def _fast_retry() -> RetryPolicy:
    return RetryPolicy(deadline=5.0, initial_delay=0.001, max_delay=0.01)


@pytest.fixture(params=["softkms", "cloudkms"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, kms_address: tuple[FakeKMS, str]
) -> Backend:
    if request.param == "softkms":
        password = tmp_path / "password.txt"
        password.write_text("correct horse battery staple\n")
        return Backend(
            manager=SoftKMS(password_file=password),
            new_uri=lambda: f"softkms:path={tmp_path}/keys/key-{next(_ids)}.pem",
            reopen=lambda: SoftKMS(password_file=password),
            missing_uri=f"softkms:path={tmp_path}/keys/absent.pem",
        )
    _, address = kms_address
    ring = "projects/cirrus-test/locations/global/keyRings/contract"

    def make() -> KeyManager:
        return CloudKMS(
            client=insecure_client(address), retry=_fast_retry(), protection_level="SOFTWARE"
        )

    return Backend(
        manager=make(),
        new_uri=lambda: f"cloudkms:{ring}/cryptoKeys/k{next(_ids)}/cryptoKeyVersions/1",
        reopen=make,
        missing_uri=f"cloudkms:{ring}/cryptoKeys/absent/cryptoKeyVersions/1",
    )


def _verify(public: PublicKey, signature: bytes, data: bytes) -> None:
    """Verify as a relying party would for Cirrus's signature algorithms."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        algo = hashes.SHA384() if public.curve.key_size >= 384 else hashes.SHA256()
        public.verify(signature, data, ec.ECDSA(algo))
    elif isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        public.verify(signature, data)


def _expected_shape(public: PublicKey, key_type: KeyType) -> bool:
    if key_type in (KeyType.EC_P256, KeyType.EC_P384):
        size = 256 if key_type is KeyType.EC_P256 else 384
        return isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size == size
    if key_type is KeyType.ED25519:
        return isinstance(public, ed25519.Ed25519PublicKey)
    bits = int(key_type.value.split("-")[1])
    return isinstance(public, rsa.RSAPublicKey) and public.key_size == bits


def _self_signed(signer: Signer) -> x509.Certificate:
    """Issue a CA certificate with cryptography's builder, signed through `as_private_key`."""
    key = as_private_key(signer)
    public = signer.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cirrus Contract Root")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    algorithm: hashes.HashAlgorithm | None = None
    if isinstance(public, ec.EllipticCurvePublicKey):
        algorithm = hashes.SHA384() if public.curve.key_size >= 384 else hashes.SHA256()
    elif isinstance(public, rsa.RSAPublicKey):
        algorithm = hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, algorithm)
    )


class SignOnly:
    """A test-only Signer with exactly the protocol: no builder_key, no private key."""

    def __init__(self, inner: Signer) -> None:
        self._inner = inner

    def public_key(self) -> PublicKey:
        return self._inner.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._inner.sign(data)


ALL_TYPES = list(KeyType)


@pytest.mark.parametrize("key_type", ALL_TYPES, ids=[t.value for t in ALL_TYPES])
def test_create_sign_reopen_and_issue(backend: Backend, key_type: KeyType) -> None:
    uri = backend.new_uri()
    signer = backend.manager.create_key(uri, key_type)
    public = signer.public_key()
    assert _expected_shape(public, key_type)

    data = b"to be signed \x00\xff" * 10
    signature = signer.sign(data)
    _verify(public, signature, data)

    # A new manager instance (a new function instance) reopens the same key.
    reopened = backend.reopen().signer(uri)
    assert reopened.public_key() == public
    _verify(public, reopened.sign(data), data)

    cert = _self_signed(signer)
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == public


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048,
                                      KeyType.ED25519], ids=lambda t: t.value)  # fmt: skip
def test_sign_only_signer_still_issues_verifying_certificate(
    backend: Backend, key_type: KeyType
) -> None:
    """Issue 2 item 8: the adapter path (no builder_key) yields a valid certificate."""
    signer = SignOnly(backend.manager.create_key(backend.new_uri(), key_type))
    assert not hasattr(signer, "builder_key")
    key = as_private_key(signer)
    with pytest.raises(TypeError):
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    cert = _self_signed(signer)
    cert.verify_directly_issued_by(cert)


def test_tampered_data_does_not_verify(backend: Backend) -> None:
    signer = backend.manager.create_key(backend.new_uri(), KeyType.EC_P256)
    signature = signer.sign(b"original")
    with pytest.raises(InvalidSignature):
        _verify(signer.public_key(), signature, b"tampered")


def test_create_refuses_to_overwrite(backend: Backend) -> None:
    uri = backend.new_uri()
    first = backend.manager.create_key(uri, KeyType.EC_P256)
    with pytest.raises(ConfigError):
        backend.manager.create_key(uri, KeyType.EC_P256)
    with pytest.raises(ConfigError):
        backend.reopen().create_key(uri, KeyType.EC_P384)
    assert backend.reopen().signer(uri).public_key() == first.public_key()


def test_missing_key_is_a_config_error(backend: Backend) -> None:
    with pytest.raises(ConfigError):
        backend.manager.signer(backend.missing_uri)


@pytest.mark.parametrize(
    "uri", ["awskms:key-id=x", "relative/path.pem", "cloudkms:projects/p", "softkms:path=rel"]
)
def test_malformed_uris_are_config_errors(backend: Backend, uri: str) -> None:
    with pytest.raises(ConfigError):
        backend.manager.signer(uri)
