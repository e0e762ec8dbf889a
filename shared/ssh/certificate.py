"""OpenSSH certificates (PROTOCOL.certkeys): built, signed and parsed by hand.

Why not `cryptography`'s `SSHCertificateBuilder`: its `sign()` takes a local
private key object, while the CA keys live behind the KeyManager (Cloud KMS,
an HSM) and only offer `sign(data)`. So the certificate is encoded here, the
signed portion goes to `Signer.sign` (one KMS call), and the signature is
wrapped in SSH's encoding (`shared.ssh.wire.signature_blob`).

Options (critical options and extensions) are written sorted by name with
each non-empty value wrapped in a string, as OpenSSH requires; a parsed
certificate keeps its signed bytes so its CA signature can be checked.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.keys.base import PublicKey, Signer
from shared.ssh.wire import (
    Reader,
    SSHPublicKey,
    WireError,
    parse_public_key,
    public_key_blob,
    read_key_fields,
    signature_blob,
    string,
    u32,
    u64,
    verify_signature,
)

USER_CERT = 1
HOST_CERT = 2
CERT_TYPES = {"user": USER_CERT, "host": HOST_CERT}
CERT_TYPE_NAMES = {USER_CERT: "user", HOST_CERT: "host"}

#: step-ca's default extensions for user certificates (sshutil's DefaultExtensions).
DEFAULT_USER_EXTENSIONS: Mapping[str, str] = {
    "permit-X11-forwarding": "",
    "permit-agent-forwarding": "",
    "permit-port-forwarding": "",
    "permit-pty": "",
    "permit-user-rc": "",
}
CRITICAL_OPTIONS = frozenset({"force-command", "source-address", "verify-required"})
MAX_PRINCIPALS = 256
MAX_TEXT = 1024
MAX_DATETIME = 253402300799  # 9999-12-31T23:59:59Z; SSH's "forever" (2**64 - 1) maps here


def cert_key_type(key_type: str) -> str:
    """The certificate algorithm name for a key type (`ssh-ed25519` -> `ssh-ed25519-cert-v01@openssh.com`)."""
    return f"{key_type}-cert-v01@openssh.com"


@dataclass(frozen=True, slots=True)
class SSHCertificate:
    """One OpenSSH certificate's fields."""

    key: SSHPublicKey
    serial: int
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, str] = field(default_factory=dict)
    nonce: bytes = b""
    signature_key: bytes = b""  # the CA public key blob
    signature: bytes = b""
    signed_bytes: bytes = b""  # the encoded certificate up to (not including) the signature
    blob: bytes = b""  # the whole encoded certificate

    @property
    def type_name(self) -> str:
        """`user` or `host`."""
        return CERT_TYPE_NAMES.get(self.cert_type, str(self.cert_type))

    @property
    def not_before(self) -> dt.datetime:
        """`valid_after` as a datetime."""
        return dt.datetime.fromtimestamp(min(self.valid_after, MAX_DATETIME), dt.UTC)

    @property
    def not_after(self) -> dt.datetime:
        """`valid_before` as a datetime (the far future for "forever")."""
        return dt.datetime.fromtimestamp(min(self.valid_before, MAX_DATETIME), dt.UTC)

    def authorized_line(self, comment: str = "") -> str:
        """The `-cert.pub` line."""
        import base64

        line = f"{cert_key_type(self.key.key_type)} {base64.b64encode(self.blob).decode()}"
        return f"{line} {comment}" if comment else line

    def signed_by(self, ca: PublicKey) -> bool:
        """Whether `ca` is the signing key and its signature over the certificate verifies."""
        return self.signature_key == public_key_blob(ca) and verify_signature(ca, self.signed_bytes, self.signature)


def _options(values: Mapping[str, str]) -> bytes:
    out = b""
    for name in sorted(values, key=lambda n: n.encode()):
        value = values[name]
        out += string(name) + string(string(value) if value else b"")
    return out


def _read_options(raw: bytes) -> dict[str, str]:
    r = Reader(raw)
    out: dict[str, str] = {}
    last = b""
    while not r.done():
        name_raw = r.string()
        data = r.string()
        if name_raw <= last and out:
            raise WireError("certificate options are not in order")
        last = name_raw
        value = ""
        if data:
            inner = Reader(data)
            value = inner.text()
            inner.end()
        out[name_raw.decode(errors="replace")] = value
    return out


def build_and_sign(
    *,
    key: SSHPublicKey,
    serial: int,
    cert_type: int,
    key_id: str,
    principals: tuple[str, ...],
    valid_after: int,
    valid_before: int,
    critical_options: Mapping[str, str],
    extensions: Mapping[str, str],
    ca: Signer,
) -> SSHCertificate:
    """Encode a certificate and sign it with the CA key through `ca.sign` (one call)."""
    if cert_type not in CERT_TYPE_NAMES:
        raise WireError("certificate type must be user or host")
    nonce = os.urandom(32)
    ca_key = ca.public_key()
    ca_blob = public_key_blob(ca_key)
    signed = (
        string(cert_key_type(key.key_type))
        + string(nonce)
        + key.fields
        + u64(serial)
        + u32(cert_type)
        + string(key_id)
        + string(b"".join(string(p) for p in principals))
        + u64(valid_after)
        + u64(valid_before)
        + string(_options(critical_options))
        + string(_options(extensions))
        + string(b"")
        + string(ca_blob)
    )
    signature = signature_blob(ca_key, ca.sign(signed))
    return SSHCertificate(
        key=key,
        serial=serial,
        cert_type=cert_type,
        key_id=key_id,
        principals=principals,
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=dict(critical_options),
        extensions=dict(extensions),
        nonce=nonce,
        signature_key=ca_blob,
        signature=signature,
        signed_bytes=signed,
        blob=signed + string(signature),
    )


def parse_certificate(blob: bytes) -> SSHCertificate:
    """Parse an encoded OpenSSH certificate (the signature is not checked here).

    Raises:
        WireError: not a well-formed certificate of a supported key type.
    """
    r = Reader(blob)
    alg = r.text()
    suffix = "-cert-v01@openssh.com"
    if not alg.endswith(suffix):
        raise WireError("not an OpenSSH certificate")
    key_type = alg[: -len(suffix)]
    nonce = r.string()
    start = r.position
    read_key_fields(key_type, r)
    fields = blob[start : r.position]
    key = parse_public_key(string(key_type) + fields)
    serial = r.u64()
    cert_type = r.u32()
    key_id = r.text()
    pr = Reader(r.string())
    principals: list[str] = []
    while not pr.done():
        principals.append(pr.text())
    valid_after = r.u64()
    valid_before = r.u64()
    critical = _read_options(r.string())
    extensions = _read_options(r.string())
    r.string()  # reserved
    signature_key = r.string()
    signed_end = r.position
    signature = r.string()
    r.end()
    return SSHCertificate(
        key=key,
        serial=serial,
        cert_type=cert_type,
        key_id=key_id,
        principals=tuple(principals),
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=critical,
        extensions=extensions,
        nonce=nonce,
        signature_key=signature_key,
        signature=signature,
        signed_bytes=blob[:signed_end],
        blob=blob,
    )
