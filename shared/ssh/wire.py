"""The SSH wire encoding (RFC 4251 s.5) and public keys (RFC 4253, 5656, 8709, 8332).

Written by hand rather than through `cryptography`'s OpenSSH support: its
loaders accept only whole `authorized_keys` lines and never expose the raw
key fields a certificate embeds, and its certificate builder needs a local
private key object (see `shared.ssh.certificate`). Everything here is
strict: lengths are bounded, trailing bytes refused, EC points checked to be
on their curve, RSA keys below 2048 bits refused.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from shared.keys.base import PublicKey

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192

_CURVES: dict[str, tuple[str, ec.EllipticCurve, hashes.HashAlgorithm]] = {
    "ecdsa-sha2-nistp256": ("nistp256", ec.SECP256R1(), hashes.SHA256()),
    "ecdsa-sha2-nistp384": ("nistp384", ec.SECP384R1(), hashes.SHA384()),
}


class WireError(ValueError):
    """Bytes that are not what the SSH wire format requires (message safe to show)."""


# ------------------------------------------------------------------ encoding
def u32(value: int) -> bytes:
    """uint32, network order."""
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    """uint64, network order."""
    return struct.pack(">Q", value)


def string(data: bytes | str) -> bytes:
    """A length-prefixed string."""
    raw = data.encode() if isinstance(data, str) else data
    return u32(len(raw)) + raw


def mpint(value: int) -> bytes:
    """A non-negative mpint: minimal big-endian two's complement, empty for zero."""
    if value < 0:
        raise WireError("negative mpint")
    if value == 0:
        return string(b"")
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")  # one spare bit keeps the sign clear
    return string(raw)


class Reader:
    """Reads SSH wire values from a buffer; every read checks bounds."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def position(self) -> int:
        """Bytes consumed so far."""
        return self._pos

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise WireError("truncated SSH data")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u32(self) -> int:
        """Read a uint32."""
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def u64(self) -> int:
        """Read a uint64."""
        value: int = struct.unpack(">Q", self._take(8))[0]
        return value

    def byte(self) -> int:
        """Read one byte."""
        return self._take(1)[0]

    def string(self) -> bytes:
        """Read a length-prefixed string."""
        return self._take(self.u32())

    def text(self) -> str:
        """Read a string that must be UTF-8."""
        try:
            return self.string().decode()
        except UnicodeDecodeError as exc:
            raise WireError("SSH string is not UTF-8") from exc

    def mpint(self) -> int:
        """Read a non-negative, minimally encoded mpint."""
        raw = self.string()
        if not raw:
            return 0
        if raw[0] & 0x80:
            raise WireError("negative mpint")
        if raw[0] == 0 and (len(raw) == 1 or not raw[1] & 0x80):
            raise WireError("mpint not minimally encoded")
        return int.from_bytes(raw, "big")

    def done(self) -> bool:
        """Whether every byte was read."""
        return self._pos == len(self._data)

    def end(self) -> None:
        """Require that every byte was read."""
        if not self.done():
            raise WireError("trailing bytes after SSH data")


def b64decode_strict(text: object, what: str) -> bytes:
    """Standard base64 (as step-ca's JSON carries SSH keys and certificates).

    Raises:
        WireError: not a non-empty base64 string.
    """
    if not isinstance(text, str) or not text:
        raise WireError(f"missing {what}")
    if len(text) > 64 * 1024:
        raise WireError(f"{what} is too large")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WireError(f"{what} is not valid base64") from exc


# --------------------------------------------------------------- public keys
@dataclass(frozen=True, slots=True)
class SSHPublicKey:
    """A parsed SSH public key: its algorithm name, wire blob and cryptography key."""

    key_type: str
    blob: bytes
    key: PublicKey

    @property
    def fields(self) -> bytes:
        """The blob without its leading type string (what a certificate embeds)."""
        return self.blob[4 + len(self.key_type.encode()) :]

    def authorized_key(self, comment: str = "") -> str:
        """The `authorized_keys` / `.pub` line."""
        line = f"{self.key_type} {base64.b64encode(self.blob).decode()}"
        return f"{line} {comment}" if comment else line


def read_key_fields(key_type: str, r: Reader) -> PublicKey:
    """Read the fields of a key of `key_type` (after its type string).

    Raises:
        WireError: unsupported type, malformed fields, a point off its curve, weak RSA.
    """
    if key_type == "ssh-ed25519":
        raw = r.string()
        if len(raw) != 32:
            raise WireError("invalid Ed25519 public key")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    if key_type in _CURVES:
        curve_name, curve, _ = _CURVES[key_type]
        if r.text() != curve_name:
            raise WireError("ECDSA key curve does not match its type")
        point = r.string()
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError as exc:
            raise WireError("invalid ECDSA public key") from exc
    if key_type == "ssh-rsa":
        e = r.mpint()
        n = r.mpint()
        if n.bit_length() < MIN_RSA_BITS:
            raise WireError(f"RSA keys must be at least {MIN_RSA_BITS} bits")
        if n.bit_length() > MAX_RSA_BITS:
            raise WireError(f"RSA keys must be at most {MAX_RSA_BITS} bits")
        if e < 3 or e % 2 == 0 or e.bit_length() > 32 or n % 2 == 0:
            raise WireError("invalid RSA public key")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError as exc:
            raise WireError("invalid RSA public key") from exc
    raise WireError(f"unsupported SSH key type {key_type[:64]!r}")


def parse_public_key(blob: bytes) -> SSHPublicKey:
    """Parse a public key blob (ECDSA P-256/P-384, Ed25519, RSA >= 2048 bits).

    Raises:
        WireError: anything else, or trailing bytes.
    """
    r = Reader(blob)
    key_type = r.text()
    key = read_key_fields(key_type, r)
    r.end()
    return SSHPublicKey(key_type=key_type, blob=blob, key=key)


def parse_authorized_key(line: str) -> SSHPublicKey:
    """Parse an `authorized_keys` / `.pub` line (`type base64 [comment]`).

    Raises:
        WireError: malformed, or the type word differs from the blob's.
    """
    parts = line.strip().split()
    if len(parts) < 2:
        raise WireError("not an OpenSSH public key line")
    key = parse_public_key(b64decode_strict(parts[1], "public key"))
    if key.key_type != parts[0]:
        raise WireError("public key type does not match its data")
    return key


def public_key_blob(key: PublicKey) -> bytes:
    """The SSH wire blob of a `cryptography` public key (the CA keys)."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def ssh_public_key(key: PublicKey) -> SSHPublicKey:
    """Wrap a `cryptography` public key."""
    return parse_public_key(public_key_blob(key))


# ---------------------------------------------------------------- signatures
def signature_blob(key: PublicKey, signature: bytes) -> bytes:
    """Turn a `Signer.sign` result (X.509 encoding) into an SSH signature blob.

    The KeyManager signs EC P-256 with SHA-256 and P-384 with SHA-384 (DER
    ECDSA-Sig-Value), RSA with PKCS#1 v1.5 SHA-256 and Ed25519 raw: exactly
    `ecdsa-sha2-nistp256/384`, `rsa-sha2-256` and `ssh-ed25519` in SSH.
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        return string("ssh-ed25519") + string(signature)
    if isinstance(key, ec.EllipticCurvePublicKey):
        name = {"secp256r1": "ecdsa-sha2-nistp256", "secp384r1": "ecdsa-sha2-nistp384"}.get(key.curve.name)
        if name is None:
            raise WireError(f"unsupported CA curve {key.curve.name}")
        r, s = decode_dss_signature(signature)
        return string(name) + string(mpint(r) + mpint(s))
    return string("rsa-sha2-256") + string(signature)


def verify_signature(key: PublicKey, data: bytes, blob: bytes) -> bool:
    """Check an SSH signature blob over `data` with `key` (SHA-1 `ssh-rsa` is refused)."""
    try:
        r = Reader(blob)
        alg = r.text()
        sig = r.string()
        r.end()
        if isinstance(key, ed25519.Ed25519PublicKey):
            if alg != "ssh-ed25519":
                return False
            key.verify(sig, data)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            spec = _CURVES.get(alg)
            if spec is None or spec[1].name != key.curve.name:
                return False
            sr = Reader(sig)
            rr, ss = sr.mpint(), sr.mpint()
            sr.end()
            key.verify(encode_dss_signature(rr, ss), data, ec.ECDSA(spec[2]))
            return True
        digest: hashes.HashAlgorithm
        if alg == "rsa-sha2-256":
            digest = hashes.SHA256()
        elif alg == "rsa-sha2-512":
            digest = hashes.SHA512()
        else:
            return False
        key.verify(sig, data, padding.PKCS1v15(), digest)
        return True
    except (WireError, InvalidSignature, ValueError):
        return False
