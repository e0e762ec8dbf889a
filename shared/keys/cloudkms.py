"""Cloud KMS keys (`cloudkms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/N`).

The private key never leaves KMS: each signature is one `AsymmetricSign` call
carrying only the digest (the message itself for Ed25519). Integrity is
checked end to end as Google recommends: we send the digest's CRC32C, and
require the answer to confirm it (`verified_digest_crc32c`), to name the key
version we asked for, and to carry a signature whose CRC32C matches. A
mismatch means corruption in transit, so it is retried like UNAVAILABLE and
DEADLINE_EXCEEDED, under one `RetryPolicy` deadline; what keeps failing
becomes `Unavailable` (503). The client library's own retries are switched
off so each attempt is exactly one RPC we can count and bound.

The public key is fetched once per key version and manager instance (with its
CRC32C checked) and cached: a warm instance issues a certificate with exactly
one KMS call. `google.cloud.kms_v1` and `google_crc32c` are imported in the
constructor only, so functions without signing permission never load them.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from shared.errors import BackendError, ConfigError
from shared.keys.base import KeyType, PublicKey
from shared.retry import Attempt, RetryPolicy

SCHEME = "cloudkms"

_NAME = re.compile(
    r"^(?P<ring>projects/[^/;]+/locations/[^/;]+/keyRings/[^/;]+)"
    r"/cryptoKeys/(?P<key>[a-zA-Z0-9_-]{1,63})"
    r"(?:/cryptoKeyVersions/(?P<version>[1-9][0-9]*))?$"
)

#: Cirrus key type -> Cloud KMS algorithm (PKCS#1 v1.5 for RSA: what X.509 CAs use).
ALGORITHMS: dict[KeyType, str] = {
    KeyType.EC_P256: "EC_SIGN_P256_SHA256",
    KeyType.EC_P384: "EC_SIGN_P384_SHA384",
    KeyType.RSA_2048: "RSA_SIGN_PKCS1_2048_SHA256",
    KeyType.RSA_3072: "RSA_SIGN_PKCS1_3072_SHA256",
    KeyType.RSA_4096: "RSA_SIGN_PKCS1_4096_SHA256",
    KeyType.ED25519: "EC_SIGN_ED25519",
}

#: Algorithm -> digest field KMS expects (None: KMS takes the message itself).
DIGESTS: dict[str, str | None] = {
    "EC_SIGN_P256_SHA256": "sha256",
    "EC_SIGN_P384_SHA384": "sha384",
    "RSA_SIGN_PKCS1_2048_SHA256": "sha256",
    "RSA_SIGN_PKCS1_3072_SHA256": "sha256",
    "RSA_SIGN_PKCS1_4096_SHA256": "sha256",
    "EC_SIGN_ED25519": None,
}

PROTECTION_LEVELS = ("HSM", "SOFTWARE")


@dataclass(frozen=True, slots=True)
class KeyName:
    """A parsed `cloudkms:` URI."""

    key_ring: str
    crypto_key_id: str
    version: int | None
    protection_level: str | None

    @property
    def crypto_key(self) -> str:
        """The CryptoKey resource name."""
        return f"{self.key_ring}/cryptoKeys/{self.crypto_key_id}"

    def version_name(self, version: int | None = None) -> str:
        """The CryptoKeyVersion resource name."""
        number = version if version is not None else self.version
        if number is None:
            raise ConfigError("cloudkms URI must name a cryptoKeyVersion to sign with")
        return f"{self.crypto_key}/cryptoKeyVersions/{number}"


def parse_uri(uri: str) -> KeyName:
    """Parse `cloudkms:<resource name>[;protection-level=HSM|SOFTWARE]`.

    Raises:
        ConfigError: the URI is not a well-formed Cloud KMS key name.
    """
    if not uri.startswith(SCHEME + ":"):
        raise ConfigError("not a cloudkms key URI")
    resource, *options = uri[len(SCHEME) + 1 :].split(";")
    match = _NAME.match(resource)
    if match is None:
        raise ConfigError(
            "cloudkms URIs look like cloudkms:projects/P/locations/L/keyRings/R/"
            "cryptoKeys/K/cryptoKeyVersions/N"
        )
    protection: str | None = None
    for option in options:
        name, _, value = option.partition("=")
        if name == "protection-level" and value.upper() in PROTECTION_LEVELS:
            protection = value.upper()
        elif option:
            raise ConfigError(f"unknown cloudkms URI option {name!r}")
    version = match.group("version")
    return KeyName(
        key_ring=match.group("ring"),
        crypto_key_id=match.group("key"),
        version=int(version) if version else None,
        protection_level=protection,
    )


def _check_public_key(public: Any, algorithm: str) -> PublicKey:
    ok = (
        (algorithm == "EC_SIGN_P256_SHA256" and isinstance(public, ec.EllipticCurvePublicKey)
         and isinstance(public.curve, ec.SECP256R1))
        or (algorithm == "EC_SIGN_P384_SHA384" and isinstance(public, ec.EllipticCurvePublicKey)
            and isinstance(public.curve, ec.SECP384R1))
        or (algorithm.startswith("RSA_SIGN_PKCS1_") and isinstance(public, rsa.RSAPublicKey)
            and str(public.key_size) == algorithm.split("_")[3])
        or (algorithm == "EC_SIGN_ED25519" and isinstance(public, ed25519.Ed25519PublicKey))
    )  # fmt: skip
    if not ok:
        raise BackendError(f"KMS public key does not match its algorithm {algorithm}")
    result: PublicKey = public
    return result


class CloudKMSSigner:
    """A `Signer` for one CryptoKeyVersion; every `sign` is one KMS call."""

    def __init__(self, *, manager: CloudKMS, name: str, algorithm: str, public: PublicKey) -> None:
        """Bind to a key version whose public key the manager already fetched."""
        self._manager = manager
        self.name = name
        self.algorithm = algorithm
        self._public = public

    def public_key(self) -> PublicKey:
        """Return the (cached) public key."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign `data` in KMS (hashing locally; KMS sees only the digest)."""
        return self._manager.sign(self.name, self.algorithm, data)


class CloudKMS:
    """A `KeyManager` for `cloudkms:` URIs over the real `google-cloud-kms` client."""

    def __init__(
        self,
        *,
        client: Any | None = None,
        endpoint: str | None = None,
        insecure: bool = False,
        protection_level: str = "HSM",
        retry: RetryPolicy | None = None,
        ready_timeout: float = 120.0,
        poll_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Build (or take) the KMS client.

        Args:
            client: a ready `KeyManagementServiceClient` (tests, shared pools).
            endpoint: `host:port` of the KMS API (private endpoints, the fake).
            insecure: plaintext gRPC to `endpoint` with no credentials; only for
                the loopback fake in tests.
            protection_level: for `create_key` when the URI does not say.
            retry: deadline and backoff for transient failures.
            ready_timeout: how long `create_key` waits for an HSM key to be generated.
            poll_interval: pause between key-state polls in `create_key`.
            sleep: injected `time.sleep` for the polls.
        """
        import google_crc32c
        from google.api_core import exceptions as api_exceptions
        from google.cloud import kms_v1

        if protection_level not in PROTECTION_LEVELS:
            raise ConfigError(f"protection level must be one of {PROTECTION_LEVELS}")
        if client is None:
            if endpoint is not None and insecure:
                import grpc  # type: ignore[import-untyped]
                from google.auth.credentials import AnonymousCredentials
                from google.cloud.kms_v1.services.key_management_service.transports import (
                    KeyManagementServiceGrpcTransport,
                )

                transport = KeyManagementServiceGrpcTransport(
                    channel=grpc.insecure_channel(endpoint),
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                )
                client = kms_v1.KeyManagementServiceClient(transport=transport)
            elif endpoint is not None:
                client = kms_v1.KeyManagementServiceClient(
                    client_options={"api_endpoint": endpoint}
                )
            else:
                client = kms_v1.KeyManagementServiceClient()
        self._client = client
        self._kms = kms_v1
        self._crc32c: Callable[[bytes], int] = google_crc32c.value
        self._exc = api_exceptions
        self._transient: tuple[type[BaseException], ...] = (
            api_exceptions.ServiceUnavailable,
            api_exceptions.DeadlineExceeded,
        )
        self._default_protection = protection_level
        self._retry = retry or RetryPolicy()
        self._ready_timeout = ready_timeout
        self._poll_interval = poll_interval
        self._sleep = sleep
        self._public: dict[str, tuple[PublicKey, str]] = {}
        self._lock = threading.Lock()

    # ---- RPC plumbing ------------------------------------------------------------------------

    def _rpc(self, method: str, request: Any, attempt: Attempt) -> Any:
        """One RPC, SDK retries off, errors classified for the retry policy."""
        try:
            return getattr(self._client, method)(
                request=request, retry=None, timeout=attempt.timeout()
            )
        except self._transient as exc:
            raise BackendError(f"KMS {method}: {type(exc).__name__}", transient=True) from exc
        except self._exc.NotFound as exc:
            raise ConfigError(f"KMS {method}: no such key or key ring") from exc
        except self._exc.AlreadyExists:
            raise
        except self._exc.GoogleAPICallError as exc:
            raise BackendError(f"KMS {method}: {type(exc).__name__}") from exc

    def _call(self, method: str, request: Any) -> Any:
        return self._retry.call(lambda a: self._rpc(method, request, a), what=f"KMS {method}")

    # ---- KeyManager --------------------------------------------------------------------------

    def signer(self, uri: str) -> CloudKMSSigner:
        """Return a signer for the key version `uri` names (public key fetched once)."""
        name = parse_uri(uri).version_name()
        public, algorithm = self._public_key(name)
        return CloudKMSSigner(manager=self, name=name, algorithm=algorithm, public=public)

    def _public_key(self, name: str) -> tuple[PublicKey, str]:
        cached = self._public.get(name)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._public.get(name)
            if cached is None:
                cached = self._retry.call(
                    lambda a: self._fetch_public_key(name, a), what="KMS GetPublicKey"
                )
                self._public[name] = cached
            return cached

    def _fetch_public_key(self, name: str, attempt: Attempt) -> tuple[PublicKey, str]:
        response = self._rpc("get_public_key", {"name": name}, attempt)
        pem = str(response.pem).encode()
        if response.name != name or response.pem_crc32c != self._crc32c(pem):
            raise BackendError("KMS GetPublicKey: integrity check failed", transient=True)
        algorithm = self._kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm(response.algorithm).name
        if algorithm not in DIGESTS:
            raise ConfigError(f"KMS key algorithm {algorithm} is not supported")
        try:
            loaded = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise BackendError("KMS GetPublicKey: unreadable public key") from exc
        return _check_public_key(loaded, algorithm), algorithm

    def sign(self, name: str, algorithm: str, data: bytes) -> bytes:
        """Sign `data` with key version `name` (one AsymmetricSign per attempt)."""
        digest_name = DIGESTS[algorithm]
        verified_field = "verified_data_crc32c"
        if digest_name is None:
            request = self._kms.AsymmetricSignRequest(
                name=name, data=data, data_crc32c=self._crc32c(data)
            )
        else:
            digest = hashlib.new(digest_name, data).digest()
            request = self._kms.AsymmetricSignRequest(
                name=name, digest={digest_name: digest}, digest_crc32c=self._crc32c(digest)
            )
            verified_field = "verified_digest_crc32c"

        def attempt_sign(attempt: Attempt) -> bytes:
            response = self._rpc("asymmetric_sign", request, attempt)
            signature = bytes(response.signature)
            if (
                not getattr(response, verified_field)
                or response.name != name
                or response.signature_crc32c != self._crc32c(signature)
            ):
                raise BackendError("KMS AsymmetricSign: integrity check failed", transient=True)
            return signature

        return self._retry.call(attempt_sign, what="KMS AsymmetricSign")

    def create_key(self, uri: str, key_type: KeyType) -> CloudKMSSigner:
        """Create CryptoKey K (its version 1) in key ring R, creating R if needed.

        Refuses (ConfigError) if the CryptoKey exists. HSM keys are generated
        asynchronously, so this waits until version 1 is ENABLED.
        """
        key = parse_uri(uri)
        if key.version not in (None, 1):
            raise ConfigError("a new Cloud KMS key starts at cryptoKeyVersions/1")
        protection = key.protection_level or self._default_protection
        self._ensure_key_ring(key.key_ring)
        kms = self._kms
        crypto_key = {
            "purpose": kms.CryptoKey.CryptoKeyPurpose.ASYMMETRIC_SIGN,
            "version_template": {
                "algorithm": getattr(
                    kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm, ALGORITHMS[key_type]
                ),
                "protection_level": getattr(kms.ProtectionLevel, protection),
            },
        }
        request = {
            "parent": key.key_ring,
            "crypto_key_id": key.crypto_key_id,
            "crypto_key": crypto_key,
        }
        try:
            self._call("create_crypto_key", request)
        except self._exc.AlreadyExists as exc:
            raise ConfigError(f"refusing to overwrite existing KMS key {key.crypto_key}") from exc
        name = key.version_name(1)
        self._wait_enabled(name)
        return self.signer(f"{SCHEME}:{name}")

    def _ensure_key_ring(self, key_ring: str) -> None:
        try:
            self._call("get_key_ring", {"name": key_ring})
            return
        except ConfigError:
            pass
        parent, _, ring_id = key_ring.rpartition("/keyRings/")
        request = {"parent": parent, "key_ring_id": ring_id, "key_ring": {}}
        # Another instance may create it meanwhile; that is as good.
        with contextlib.suppress(self._exc.AlreadyExists):
            self._call("create_key_ring", request)

    def _wait_enabled(self, name: str) -> None:
        states = self._kms.CryptoKeyVersion.CryptoKeyVersionState
        deadline = time.monotonic() + self._ready_timeout
        while True:
            version = self._call("get_crypto_key_version", {"name": name})
            state = states(version.state)
            if state == states.ENABLED:
                return
            if state != states.PENDING_GENERATION:
                raise BackendError(f"KMS key version is {state.name}, not ENABLED")
            if time.monotonic() >= deadline:
                raise BackendError("KMS key generation did not finish in time", transient=True)
            self._sleep(self._poll_interval)
