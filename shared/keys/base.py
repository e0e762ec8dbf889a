"""The key seam: a `Signer` exposes a public key and `sign(data)`, nothing else.

No caller ever needs the private key object. `SignerPrivateKey` adapts a
`Signer` to cryptography's private-key ABCs so the standard X.509/CRL/OCSP
builders can use a KMS or HSM key unchanged (pyca documents this pattern for
cloud HSM keys).
"""

from __future__ import annotations

import enum
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyType(enum.StrEnum):
    """Key types an authority may hold (the standards allow these)."""

    EC_P256 = "EC-P256"
    EC_P384 = "EC-P384"
    RSA_2048 = "RSA-2048"
    RSA_3072 = "RSA-3072"
    RSA_4096 = "RSA-4096"
    ED25519 = "Ed25519"


class Signer(Protocol):
    """A key that can sign but never hands out its private half.

    `sign` takes the message (not a digest) and returns the signature in the
    encoding X.509 uses for the key's algorithm: DER ECDSA-Sig-Value with
    SHA-256 (P-256) or SHA-384 (P-384), RSA PKCS#1 v1.5 with SHA-256, or raw
    Ed25519.
    """

    def public_key(self) -> PublicKey:
        """Return the public key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign `data` and return the signature."""
        ...


class KeyManager(Protocol):
    """Opens and creates keys addressed by URI (`softkms:path=...`, `cloudkms:...`)."""

    def signer(self, uri: str) -> Signer:
        """Return a signer for an existing key.

        Raises:
            shared.errors.ConfigError: the URI is malformed or names no key.
            shared.errors.BackendError: the backend failed.
        """
        ...

    def create_key(self, uri: str, key_type: KeyType) -> Signer:
        """Create a key at `uri` (refusing to overwrite) and return its signer."""
        ...
