"""A small fake Cloud KMS gRPC service for the real `google-cloud-kms` client.

No Cloud KMS emulator exists. This serves the handful of KeyManagementService
methods Cirrus uses over a real gRPC server on loopback, so the client
library's own serialisation, routing headers and error mapping run unchanged.
It holds real keys (cryptography), signs real digests, and computes real
CRC32C checksums, so integrity checks are exercised for real. Faults can be
injected: the next N calls of a method fail with a status code, or the next N
responses carry a corrupted checksum, signature or name.

Only what Cirrus calls is implemented; anything else answers UNIMPLEMENTED.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from google.cloud import kms_v1

SERVICE = "google.cloud.kms.v1.KeyManagementService"
Algorithm = kms_v1.CryptoKeyVersion.CryptoKeyVersionAlgorithm
State = kms_v1.CryptoKeyVersion.CryptoKeyVersionState

_HASH: dict[str, hashes.HashAlgorithm | None] = {
    "EC_SIGN_P256_SHA256": hashes.SHA256(),
    "EC_SIGN_P384_SHA384": hashes.SHA384(),
    "RSA_SIGN_PKCS1_2048_SHA256": hashes.SHA256(),
    "RSA_SIGN_PKCS1_3072_SHA256": hashes.SHA256(),
    "RSA_SIGN_PKCS1_4096_SHA256": hashes.SHA256(),
    "EC_SIGN_ED25519": None,
}


def _generate(algorithm: str) -> Any:
    if algorithm == "EC_SIGN_P256_SHA256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "EC_SIGN_P384_SHA384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm.startswith("RSA_SIGN_PKCS1_"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm.split("_")[3]))
    if algorithm == "EC_SIGN_ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(algorithm)


def crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


@dataclass
class _Version:
    key: Any
    algorithm: str
    protection_level: int
    pending_polls: int = 0


@dataclass
class FakeKMS:
    """State and behaviour of the fake service (thread-safe)."""

    key_rings: set[str] = field(default_factory=set)
    crypto_keys: dict[str, str] = field(default_factory=dict)  # name -> algorithm
    versions: dict[str, _Version] = field(default_factory=dict)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    #: versions stay PENDING_GENERATION for this many GetCryptoKeyVersion polls (HSM keys do).
    pending_polls: int = 0
    _failures: dict[str, list[grpc.StatusCode]] = field(default_factory=dict)
    _corruptions: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- fault injection ---------------------------------------------------------------------

    def fail_next(
        self, method: str, count: int = 1, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    ) -> None:
        """Make the next `count` calls of `method` (e.g. "AsymmetricSign") fail with `code`."""
        with self._lock:
            self._failures.setdefault(method, []).extend([code] * count)

    def corrupt_next(self, what: str, count: int = 1) -> None:
        """Corrupt the next `count` AsymmetricSign/GetPublicKey responses.

        `what`: "signature_crc32c", "verified_digest_crc32c", "signature",
        "name" (AsymmetricSign) or "pem_crc32c" (GetPublicKey).
        """
        with self._lock:
            self._corruptions.extend([what] * count)

    def _take_corruption(self, allowed: set[str]) -> str | None:
        with self._lock:
            for i, what in enumerate(self._corruptions):
                if what in allowed:
                    return self._corruptions.pop(i)
        return None

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.calls[method] += 1
            queue = self._failures.get(method)
            code = queue.pop(0) if queue else None
        if code is not None:
            context.abort(code, f"injected {code.name}")

    # ---- seeding -----------------------------------------------------------------------------

    def add_key(self, crypto_key: str, algorithm: str, private_key: Any = None) -> str:
        """Seed a CryptoKey with version 1 (optionally holding `private_key`); return its name."""
        with self._lock:
            self.key_rings.add(crypto_key.split("/cryptoKeys/")[0])
            self.crypto_keys[crypto_key] = algorithm
            name = f"{crypto_key}/cryptoKeyVersions/1"
            self.versions[name] = _Version(
                key=private_key if private_key is not None else _generate(algorithm),
                algorithm=algorithm,
                protection_level=kms_v1.ProtectionLevel.HSM,
            )
        return name

    # ---- RPCs --------------------------------------------------------------------------------

    def GetKeyRing(self, req: kms_v1.GetKeyRingRequest, ctx: grpc.ServicerContext) -> Any:
        self._enter("GetKeyRing", ctx)
        if req.name not in self.key_rings:
            ctx.abort(grpc.StatusCode.NOT_FOUND, f"KeyRing {req.name} not found.")
        return kms_v1.KeyRing(name=req.name)

    def CreateKeyRing(self, req: kms_v1.CreateKeyRingRequest, ctx: grpc.ServicerContext) -> Any:
        self._enter("CreateKeyRing", ctx)
        name = f"{req.parent}/keyRings/{req.key_ring_id}"
        with self._lock:
            if name in self.key_rings:
                ctx.abort(grpc.StatusCode.ALREADY_EXISTS, f"KeyRing {name} already exists.")
            self.key_rings.add(name)
        return kms_v1.KeyRing(name=name)

    def CreateCryptoKey(
        self, req: kms_v1.CreateCryptoKeyRequest, ctx: grpc.ServicerContext
    ) -> Any:
        self._enter("CreateCryptoKey", ctx)
        name = f"{req.parent}/cryptoKeys/{req.crypto_key_id}"
        template = req.crypto_key.version_template
        algorithm = Algorithm(template.algorithm).name
        if req.crypto_key.purpose != kms_v1.CryptoKey.CryptoKeyPurpose.ASYMMETRIC_SIGN:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "only ASYMMETRIC_SIGN keys are faked")
        if algorithm not in _HASH:
            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"algorithm {algorithm} not faked")
        with self._lock:
            if req.parent not in self.key_rings:
                ctx.abort(grpc.StatusCode.NOT_FOUND, f"KeyRing {req.parent} not found.")
            if name in self.crypto_keys:
                ctx.abort(grpc.StatusCode.ALREADY_EXISTS, f"CryptoKey {name} already exists.")
            self.crypto_keys[name] = algorithm
            self.versions[f"{name}/cryptoKeyVersions/1"] = _Version(
                key=_generate(algorithm),
                algorithm=algorithm,
                protection_level=int(template.protection_level),
                pending_polls=self.pending_polls,
            )
        return kms_v1.CryptoKey(
            name=name,
            purpose=req.crypto_key.purpose,
            version_template=template,
        )

    def _version(self, name: str, ctx: grpc.ServicerContext) -> _Version:
        version = self.versions.get(name)
        if version is None:
            ctx.abort(grpc.StatusCode.NOT_FOUND, f"CryptoKeyVersion {name} not found.")
        assert version is not None
        return version

    def GetCryptoKeyVersion(
        self, req: kms_v1.GetCryptoKeyVersionRequest, ctx: grpc.ServicerContext
    ) -> Any:
        self._enter("GetCryptoKeyVersion", ctx)
        version = self._version(req.name, ctx)
        with self._lock:
            state = State.PENDING_GENERATION if version.pending_polls > 0 else State.ENABLED
            version.pending_polls = max(0, version.pending_polls - 1)
        return kms_v1.CryptoKeyVersion(
            name=req.name,
            state=state,
            algorithm=Algorithm[version.algorithm],
            protection_level=version.protection_level,
        )

    def GetPublicKey(self, req: kms_v1.GetPublicKeyRequest, ctx: grpc.ServicerContext) -> Any:
        self._enter("GetPublicKey", ctx)
        version = self._version(req.name, ctx)
        if version.pending_polls > 0:
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "key is not enabled")
        pem = (
            version.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        pem_crc = crc32c(pem.encode())
        if self._take_corruption({"pem_crc32c"}):
            pem_crc ^= 1
        return kms_v1.PublicKey(
            pem=pem,
            pem_crc32c=pem_crc,
            algorithm=Algorithm[version.algorithm],
            name=req.name,
            protection_level=version.protection_level,
        )

    def AsymmetricSign(
        self, req: kms_v1.AsymmetricSignRequest, ctx: grpc.ServicerContext
    ) -> Any:
        self._enter("AsymmetricSign", ctx)
        version = self._version(req.name, ctx)
        if version.pending_polls > 0:
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "key is not enabled")
        hash_alg = _HASH[version.algorithm]
        key = version.key
        verified_digest = verified_data = False
        if hash_alg is None:
            if not req.data:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "EC_SIGN_ED25519 signs data")
            if req.data_crc32c is not None:
                if req.data_crc32c != crc32c(req.data):
                    ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "data_crc32c mismatch")
                verified_data = True
            signature = key.sign(req.data)
        else:
            digest = getattr(req.digest, hash_alg.name, b"")
            if not digest or len(digest) != hash_alg.digest_size:
                ctx.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{version.algorithm} needs a {hash_alg.name} digest",
                )
            if req.digest_crc32c is not None:
                if req.digest_crc32c != crc32c(digest):
                    ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "digest_crc32c mismatch")
                verified_digest = True
            prehashed = utils.Prehashed(hash_alg)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                signature = key.sign(digest, ec.ECDSA(prehashed))
            else:
                signature = key.sign(digest, padding.PKCS1v15(), prehashed)
        sig_crc = crc32c(signature)
        name = req.name
        what = self._take_corruption(
            {"signature_crc32c", "verified_digest_crc32c", "signature", "name"}
        )
        if what == "signature_crc32c":
            sig_crc ^= 1
        elif what == "verified_digest_crc32c":
            verified_digest = verified_data = False
        elif what == "signature":
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        elif what == "name":
            name = name.replace("cryptoKeyVersions/1", "cryptoKeyVersions/2")
        return kms_v1.AsymmetricSignResponse(
            signature=signature,
            signature_crc32c=sig_crc,
            verified_digest_crc32c=verified_digest,
            verified_data_crc32c=verified_data,
            name=name,
            protection_level=version.protection_level,
        )


_METHODS: dict[str, tuple[type[Any], type[Any]]] = {
    "GetKeyRing": (kms_v1.GetKeyRingRequest, kms_v1.KeyRing),
    "CreateKeyRing": (kms_v1.CreateKeyRingRequest, kms_v1.KeyRing),
    "CreateCryptoKey": (kms_v1.CreateCryptoKeyRequest, kms_v1.CryptoKey),
    "GetCryptoKeyVersion": (kms_v1.GetCryptoKeyVersionRequest, kms_v1.CryptoKeyVersion),
    "GetPublicKey": (kms_v1.GetPublicKeyRequest, kms_v1.PublicKey),
    "AsymmetricSign": (kms_v1.AsymmetricSignRequest, kms_v1.AsymmetricSignResponse),
}


def _handler(fake: FakeKMS, method: str) -> grpc.RpcMethodHandler:
    request_type, response_type = _METHODS[method]
    impl: Callable[[Any, grpc.ServicerContext], Any] = getattr(fake, method)
    return grpc.unary_unary_rpc_method_handler(
        impl,
        request_deserializer=request_type.deserialize,
        response_serializer=response_type.serialize,
    )


@contextmanager
def serve_fake_kms(fake: FakeKMS | None = None) -> Iterator[tuple[FakeKMS, str]]:
    """Serve a FakeKMS on a free loopback port; yield (fake, "127.0.0.1:port")."""
    fake = fake or FakeKMS()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handlers = {method: _handler(fake, method) for method in _METHODS}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def insecure_client(address: str) -> Any:
    """The real KeyManagementServiceClient, talking plaintext gRPC to `address`."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.kms_v1.services.key_management_service.transports import (
        KeyManagementServiceGrpcTransport,
    )

    transport = KeyManagementServiceGrpcTransport(
        channel=grpc.insecure_channel(address), credentials=AnonymousCredentials()
    )
    return kms_v1.KeyManagementServiceClient(transport=transport)
