"""One contract for every KeyManager: softkms, cloudkms, awskms and pkcs11.

Whatever the backend, a CA key must: be created once and never overwritten,
reopen by URI to the same public key, produce signatures cryptography verifies,
and drive cryptography's CertificateBuilder through `as_private_key` so the
certificate verifies. Cloud KMS runs through the real `google-cloud-kms` client
against tests/fakes/kms_server.py over loopback gRPC; AWS KMS through boto3
against moto's server (tests/fakes/moto_kms.py, which corrects moto's known
differences from AWS); PKCS#11 through python-pkcs11 against a SoftHSM2 token.
A key type a backend cannot hold must be refused with a clear ConfigError.
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
from shared.keys.awskms import AWSKMS
from shared.keys.base import KeyManager, KeyType, PublicKey, Signer
from shared.keys.cloudkms import CloudKMS
from shared.keys.pkcs11 import PKCS11
from shared.keys.softkms import SoftKMS
from shared.retry import RetryPolicy
from tests.fakes import softhsm
from tests.fakes.kms_server import FakeKMS, insecure_client, serve_fake_kms
from tests.fakes.moto_kms import kms_client, serve_moto_kms

_ids = itertools.count()


@dataclass
class Backend:
    """A KeyManager under test plus how to name keys and reopen it."""

    manager: KeyManager
    new_uri: Callable[[], str]
    reopen: Callable[[], KeyManager]
    missing_uri: str
    unsupported: frozenset[KeyType] = frozenset()


@pytest.fixture(scope="module")
def kms_address() -> Iterator[tuple[FakeKMS, str]]:
    with serve_fake_kms() as served:
        yield served


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with serve_moto_kms() as endpoint:
        yield endpoint


@pytest.fixture
def hsm(softhsm_token: softhsm.SoftHSM) -> softhsm.SoftHSM:
    return softhsm_token


def _fast_retry() -> RetryPolicy:
    return RetryPolicy(deadline=5.0, initial_delay=0.001, max_delay=0.01)


@pytest.fixture(params=["softkms", "cloudkms", "awskms", "pkcs11"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, kms_address: tuple[FakeKMS, str]
) -> Backend:
    if request.param == "awskms":
        endpoint = request.getfixturevalue("moto_endpoint")

        def aws() -> KeyManager:
            return AWSKMS(client=kms_client(endpoint), retry=_fast_retry())

        return Backend(
            manager=aws(),
            new_uri=lambda: f"awskms:key-id=alias/contract-{next(_ids)};region=us-east-1",
            reopen=aws,
            missing_uri="awskms:key-id=alias/absent;region=us-east-1",
            unsupported=frozenset({KeyType.ED25519}),
        )
    if request.param == "pkcs11":
        token: softhsm.SoftHSM = request.getfixturevalue("hsm")
        return Backend(
            manager=PKCS11(module_path=token.module, retry=_fast_retry()),
            new_uri=lambda: token.uri(f"contract-{next(_ids)}"),
            reopen=lambda: PKCS11(module_path=token.module, retry=_fast_retry()),
            missing_uri=token.uri("absent"),
            unsupported=frozenset({KeyType.ED25519}),
        )
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
    if key_type in backend.unsupported:
        with pytest.raises(ConfigError, match=key_type.value):
            backend.manager.create_key(uri, key_type)
        return
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
    if key_type in backend.unsupported:
        return  # refused at create_key, covered by test_create_sign_reopen_and_issue
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


# ---- backend-specific refusals and URIs (same contract: a clear ConfigError) ----------------------


def test_awskms_disabled_key_is_refused_clearly(moto_endpoint: str) -> None:
    manager = AWSKMS(client=kms_client(moto_endpoint), retry=_fast_retry())
    uri = f"awskms:key-id=alias/disabled-{next(_ids)}"
    signer = manager.create_key(uri, KeyType.EC_P256)
    client = kms_client(moto_endpoint)
    client.disable_key(KeyId=client.describe_key(KeyId=uri.split("=", 1)[1])["KeyMetadata"]["KeyId"])
    with pytest.raises(ConfigError, match="disabled"):
        signer.sign(b"data")


def test_awskms_pss_signatures_verify_and_drive_the_builder(moto_endpoint: str) -> None:
    manager = AWSKMS(client=kms_client(moto_endpoint), retry=_fast_retry())
    name = f"alias/pss-{next(_ids)}"
    manager.create_key(f"awskms:key-id={name}", KeyType.RSA_2048)
    signer = manager.signer(f"awskms:key-id={name};signing-algorithm=pss")
    public = signer.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(signer.sign(b"data"), b"data", pss, hashes.SHA256())
    name_ = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PSS Root")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name_).issuer_name(name_).public_key(public)
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(as_private_key(signer), hashes.SHA256(), rsa_padding=pss)
    )  # fmt: skip
    cert.verify_directly_issued_by(cert)
    with pytest.raises(TypeError):  # a PKCS#1 builder must not get a PSS signature
        _self_signed(signer)


def test_awskms_new_key_needs_an_alias(moto_endpoint: str) -> None:
    manager = AWSKMS(client=kms_client(moto_endpoint), retry=_fast_retry())
    with pytest.raises(ConfigError, match="alias"):
        manager.create_key("awskms:key-id=1234abcd-12ab-34cd-56ef-1234567890ab", KeyType.EC_P256)


def test_awskms_throttling_is_retried_then_unavailable(moto_endpoint: str) -> None:
    """Transient errors only are retried: a throttled Sign is tried again until the deadline."""
    from botocore.exceptions import ClientError

    from shared.errors import Unavailable

    real = kms_client(moto_endpoint)
    calls = {"sign": 0}

    class Throttled:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def sign(self, **_: object) -> object:
            calls["sign"] += 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Sign")

    manager = AWSKMS(client=real, retry=_fast_retry())
    name = f"alias/throttle-{next(_ids)}"
    manager.create_key(f"awskms:key-id={name}", KeyType.EC_P256)
    throttled = AWSKMS(client=Throttled(), retry=RetryPolicy(deadline=0.2, initial_delay=0.01, max_delay=0.02))
    with pytest.raises(Unavailable):
        throttled.signer(f"awskms:key-id={name}").sign(b"x")
    assert calls["sign"] > 1


@pytest.mark.parametrize(
    "uri",
    ["awskms:", "awskms:region=us-east-1", "awskms:key-id=a;colour=red", "awskms:key-id=a;signing-algorithm=md5"],
)
def test_awskms_malformed_uris(uri: str, moto_endpoint: str) -> None:
    with pytest.raises(ConfigError):
        AWSKMS(client=kms_client(moto_endpoint)).signer(uri)


def test_pkcs11_wrong_pin_is_a_clear_error_without_the_pin(tmp_path: Path, hsm: softhsm.SoftHSM) -> None:
    wrong = tmp_path / "wrong-pin"
    wrong.write_text("999999\n")
    uri = f"pkcs11:module-path={hsm.module};token={softhsm.UNUSED_TOKEN};object=k?pin-source={wrong}"
    with pytest.raises(ConfigError, match="refused the PIN") as caught:
        PKCS11(retry=_fast_retry()).signer(uri)
    assert "999999" not in str(caught.value)


@pytest.mark.parametrize(
    "uri, message",
    [
        ("pkcs11:token=t;object=k?pin-value=1234", "must not carry the PIN"),
        ("pkcs11:object=k", "must name a token"),
        ("pkcs11:token=t", "must name a key"),
        ("pkcs11:token=t;object=k;id=zz", "hex"),
        ("pkcs11:token=t;object=k;slot-id=1x", "slot-id"),
        ("pkcs11:token=t;object=k;colour=red", "unknown"),
    ],
)
def test_pkcs11_malformed_uris(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PKCS11().signer(uri)
