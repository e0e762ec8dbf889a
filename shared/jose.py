"""JWK helpers and the password-encrypted JWE step-ca uses for provisioner keys.

PyJWT has no JWE, and step's `encryptedKey` is one fixed shape
(PBES2-HS256+A128KW key wrapping, A256GCM content, `cty: jwk+json`), so it is
assembled here from cryptography's primitives (PBKDF2, AES key wrap, AES-GCM)
following RFC 7516/7518 rather than pulling in a JOSE framework for one call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

P2C = 600_000
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def b64url(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding.

    Raises:
        ValueError: invalid input.
    """
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint (JOSE-07): required members only, sorted, compact.

    Raises:
        ValueError: unknown key type.
    """
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError("unsupported key type")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def _kek(password: bytes, alg: str, p2s: bytes, p2c: int) -> bytes:
    salt = alg.encode() + b"\x00" + p2s
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=16, salt=salt, iterations=p2c).derive(password)


def encrypt_jwk(jwk: dict[str, Any], password: bytes, *, p2c: int = P2C) -> str:
    """Encrypt a private JWK as step-ca's `encryptedKey` (compact JWE)."""
    alg = "PBES2-HS256+A128KW"
    p2s = os.urandom(16)
    header = {"alg": alg, "cty": "jwk+json", "enc": "A256GCM", "p2c": p2c, "p2s": b64url(p2s)}
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    cek = os.urandom(32)
    wrapped = aes_key_wrap(_kek(password, alg, p2s, p2c), cek)
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, json.dumps(jwk, separators=(",", ":")).encode(), protected.encode())
    ciphertext, tag = sealed[:-16], sealed[-16:]
    return ".".join([protected, b64url(wrapped), b64url(iv), b64url(ciphertext), b64url(tag)])


def decrypt_jwk(jwe: str, password: bytes) -> dict[str, Any]:
    """Decrypt an `encryptedKey` (PBES2-HS256+A128KW with A128GCM or A256GCM).

    Raises:
        ValueError: malformed JWE, unsupported algorithm or wrong password.
    """
    parts = jwe.split(".")
    if len(parts) != 5:
        raise ValueError("not a compact JWE")
    header = json.loads(b64url_decode(parts[0]))
    if header.get("alg") != "PBES2-HS256+A128KW" or header.get("enc") not in ("A128GCM", "A256GCM"):
        raise ValueError("unsupported JWE algorithm")
    p2c = int(header["p2c"])
    if not 1000 <= p2c <= 10_000_000:
        raise ValueError("unreasonable p2c")
    kek = _kek(password, header["alg"], b64url_decode(header["p2s"]), p2c)
    try:
        cek = aes_key_unwrap(kek, b64url_decode(parts[1]))
        plain = AESGCM(cek).decrypt(
            b64url_decode(parts[2]), b64url_decode(parts[3]) + b64url_decode(parts[4]), parts[0].encode()
        )
    except Exception as exc:
        raise ValueError("cannot decrypt: wrong password or corrupted key") from exc
    value = json.loads(plain)
    if not isinstance(value, dict):
        raise ValueError("decrypted payload is not a JWK")
    return value
