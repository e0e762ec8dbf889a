"""Software keys in password-encrypted PEM files (`softkms:path=/abs/file`).

This is the embedded default: `cirrus init` creates the root and intermediate
here. Keys are PKCS#8 PEM encrypted with the password from a password file
(cryptography's `BestAvailableEncryption`), written with mode 0600, and never
overwritten: a CA key that silently changes invalidates every chain below it.

The hot path matters (one `/sign` is ~0.24 ms of crypto), so a manager caches
each decrypted key for its lifetime and the signer exposes `builder_key()`:
the loaded cryptography key, which certificate builders can use directly
instead of going through the `Signer` adapter.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from shared.errors import BackendError, ConfigError
from shared.keys.base import KeyType, PublicKey

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

SCHEME = "softkms"


def key_path(uri: str) -> Path:
    """The file a `softkms:` URI (or a plain absolute path) names.

    Accepts `softkms:path=/abs/file`, `softkms:/abs/file` and `/abs/file`;
    extra `;name=value` attributes after the path are ignored, as step does.

    Raises:
        ConfigError: not a softkms URI, or the path is not absolute.
    """
    rest = uri
    if uri.startswith(SCHEME + ":"):
        rest = uri[len(SCHEME) + 1 :]
        attrs = dict(part.split("=", 1) for part in rest.split(";") if "=" in part)
        rest = attrs["path"] if "path" in attrs else rest.split(";", 1)[0]
    elif ":" in uri.split("/", 1)[0]:
        raise ConfigError("not a softkms key URI")
    if not rest.startswith("/"):
        raise ConfigError("softkms key paths must be absolute")
    return Path(rest)


def _generate(key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.EC_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if key_type is KeyType.RSA_2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type is KeyType.RSA_3072:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if key_type is KeyType.RSA_4096:
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigError(f"softkms cannot create {key_type} keys")


class SoftSigner:
    """A `Signer` over a loaded private key, plus `builder_key()` for the fast path."""

    def __init__(self, key: PrivateKey) -> None:
        """Wrap `key`; rejects curves and sizes Cirrus does not sign with."""
        self._key = key
        self._public: PublicKey = key.public_key()
        self._ec_algorithm: ec.ECDSA | None = None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if isinstance(key.curve, ec.SECP256R1):
                self._ec_algorithm = ec.ECDSA(hashes.SHA256())
            elif isinstance(key.curve, ec.SECP384R1):
                self._ec_algorithm = ec.ECDSA(hashes.SHA384())
            else:
                raise ConfigError(f"unsupported EC curve {key.curve.name}")
        elif isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
            raise ConfigError("RSA keys must have at least 2048 bits")

    def public_key(self) -> PublicKey:
        """Return the public key."""
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign `data` in the encoding X.509 uses for this key type."""
        key = self._key
        if self._ec_algorithm is not None:
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return key.sign(data, self._ec_algorithm)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        raise TypeError("unreachable: key type checked at construction")

    def builder_key(self) -> PrivateKey:
        """The loaded key, for cryptography's builders (skips the adapter)."""
        return self._key


class SoftKMS:
    """A `KeyManager` for `softkms:` URIs, caching decrypted keys per instance."""

    def __init__(self, *, password_file: Path | None = None, password: bytes | None = None) -> None:
        """Read the password once.

        Args:
            password_file: a file holding the key password (trailing newline
                ignored, as step does).
            password: the password itself (tests, ceremonies); wins over the file.

        Raises:
            ConfigError: the password file is unreadable or empty.
        """
        if password is None and password_file is not None:
            try:
                password = password_file.read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise ConfigError(f"cannot read key password file: {exc.strerror}") from exc
            if not password:
                raise ConfigError("the key password file is empty")
        self._password = password
        self._cache: dict[Path, SoftSigner] = {}
        self._lock = threading.Lock()

    def signer(self, uri: str) -> SoftSigner:
        """Return the signer for the key file `uri` names (decrypted once)."""
        path = key_path(uri)
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._cache.get(path)
            if cached is None:
                cached = SoftSigner(self._load(path))
                self._cache[path] = cached
            return cached

    def _load(self, path: Path) -> PrivateKey:
        try:
            pem = path.read_bytes()
        except FileNotFoundError as exc:
            raise ConfigError(f"no softkms key at {path}") from exc
        except OSError as exc:
            raise BackendError(f"cannot read softkms key: {exc.strerror}") from exc
        key: Any
        try:
            key = serialization.load_pem_private_key(pem, password=self._password)
        except TypeError:
            # Given a password but the key is not encrypted (or the reverse).
            try:
                key = serialization.load_pem_private_key(pem, password=None)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"softkms key {path} needs a password") from exc
        except ValueError as exc:
            raise ConfigError(f"cannot decrypt softkms key {path}: wrong password?") from exc
        if not isinstance(
            key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ConfigError(f"unsupported key type in {path}")
        return key

    def create_key(self, uri: str, key_type: KeyType) -> SoftSigner:
        """Generate a key and store it at `uri`; refuses to overwrite any file.

        The key is written to a 0600 temp file in the target directory and
        hard-linked into place, which fails if the name exists: two
        concurrent `create_key` calls cannot both win.
        """
        if not self._password:
            raise ConfigError("softkms needs a password to create keys")
        path = key_path(uri)
        key = _generate(key_type)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password),
        )
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-key-")  # mode 0600
        except OSError as exc:
            raise BackendError(f"cannot create softkms key: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
        except FileExistsError as exc:
            raise ConfigError(f"refusing to overwrite existing key {path}") from exc
        except OSError as exc:
            raise BackendError(f"cannot write softkms key: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        signer = SoftSigner(key)
        with self._lock:
            self._cache[path] = signer
        return signer
