"""Adapt a `Signer` to cryptography's private-key ABCs.

cryptography's builders (`CertificateBuilder.sign`, CRL and OCSP builders) take
a private key object and call only its `sign()` and `public_key()`. Wrapping a
`Signer` in a subclass of the matching ABC lets a KMS, HSM or any sign-only key
drive those builders; every method that would reveal or use the private half
for something other than signing raises `TypeError`.

The builder passes the hash (and padding) it chose; we check it is the one the
signer produces, so a mismatch fails loudly instead of yielding a certificate
whose signature does not verify.
"""

from __future__ import annotations

from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from shared.keys.base import Signer


def _refuse(*_: Any, **__: Any) -> NoReturn:
    raise TypeError("this key is held by a key manager and cannot be exported or used that way")


def signature_hash(public_key: Any) -> hashes.SHA256 | hashes.SHA384 | None:
    """The hash Cirrus signs with for a CA public key (None for Ed25519)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return hashes.SHA384() if public_key.curve.key_size >= 384 else hashes.SHA256()
    if isinstance(public_key, rsa.RSAPublicKey):
        return hashes.SHA256()
    return None


class _ECSigner(ec.EllipticCurvePrivateKey):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = signer.public_key()
        assert isinstance(self._public, ec.EllipticCurvePublicKey)

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        signature_algorithm: ec.EllipticCurveSignatureAlgorithm,
    ) -> bytes:
        expected = signature_hash(self._public)
        got = getattr(signature_algorithm, "algorithm", None)
        if expected is None or got is None or got.name != expected.name:
            raise TypeError(f"signer produces {expected.name if expected else '?'} signatures")
        return self._signer.sign(bytes(data))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public  # type: ignore[return-value]

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve  # type: ignore[union-attr]

    @property
    def key_size(self) -> int:
        return self._public.key_size  # type: ignore[union-attr]

    exchange = _refuse
    private_numbers = _refuse
    private_bytes = _refuse

    def __copy__(self) -> _ECSigner:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _ECSigner:
        return self


class _RSASigner(rsa.RSAPrivateKey):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = signer.public_key()
        assert isinstance(self._public, rsa.RSAPublicKey)

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        padding_: padding.AsymmetricPadding,
        algorithm: Any,
    ) -> bytes:
        if not isinstance(algorithm, hashes.SHA256):
            raise TypeError("signer produces RSA signatures with SHA-256")
        if getattr(self._signer, "rsa_pss", False):
            # A PSS signer (e.g. awskms with signing-algorithm=pss) uses MGF1-SHA-256 and a
            # salt as long as the digest; the builder must ask for exactly that.
            mgf = getattr(padding_, "mgf", None)
            salt = getattr(padding_, "_salt_length", None)
            if (
                not isinstance(padding_, padding.PSS)
                or not isinstance(getattr(mgf, "_algorithm", None), hashes.SHA256)
                or salt not in (32, padding.PSS.DIGEST_LENGTH)
            ):
                raise TypeError("signer produces RSASSA-PSS SHA-256 signatures with a 32-byte salt")
        elif not isinstance(padding_, padding.PKCS1v15):
            raise TypeError("signer produces RSA PKCS#1 v1.5 SHA-256 signatures")
        return self._signer.sign(bytes(data))

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public  # type: ignore[return-value]

    @property
    def key_size(self) -> int:
        return self._public.key_size  # type: ignore[union-attr]

    decrypt = _refuse
    private_numbers = _refuse
    private_bytes = _refuse

    def __copy__(self) -> _RSASigner:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _RSASigner:
        return self


class _Ed25519Signer(ed25519.Ed25519PrivateKey):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = signer.public_key()
        assert isinstance(self._public, ed25519.Ed25519PublicKey)

    def sign(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._signer.sign(bytes(data))

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public  # type: ignore[return-value]

    private_bytes = _refuse
    private_bytes_raw = _refuse

    def __copy__(self) -> _Ed25519Signer:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Ed25519Signer:
        return self


IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def as_private_key(signer: Signer) -> IssuerKey:
    """Wrap `signer` so cryptography's builders can sign with it.

    A signer that holds a loaded cryptography key offers it through
    `builder_key()` (softkms does; that is the fast path, no Python call per
    signature), and a signer that already is a cryptography private key is
    returned unchanged. Any other signer, such as a KMS or HSM key, is wrapped.
    """
    builder_key = getattr(signer, "builder_key", None)
    if callable(builder_key):
        key = builder_key()
        if isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            return key
        raise TypeError(f"builder_key() returned {type(key).__name__}, not a private key")
    if isinstance(
        signer, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        return signer
    public = signer.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _ECSigner(signer)
    if isinstance(public, rsa.RSAPublicKey):
        return _RSASigner(signer)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return _Ed25519Signer(signer)
    raise TypeError(f"unsupported signer public key {type(public).__name__}")
