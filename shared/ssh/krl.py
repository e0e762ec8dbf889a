"""OpenSSH key revocation lists (PROTOCOL.krl), written by hand.

No Python library writes KRLs. Cirrus revokes SSH certificates by serial, so
the list has one certificates section per CA key with a serial list; it is
unsigned (sshd's `RevokedKeys` and `ssh-keygen -Q` accept unsigned KRLs, and
the file's integrity comes from where it is published).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.ssh.wire import string, u32, u64

KRL_MAGIC = 0x5353484B524C0A00  # "SSHKRL\n\0"
KRL_FORMAT_VERSION = 1
KRL_SECTION_CERTIFICATES = 1
KRL_SECTION_CERT_SERIAL_LIST = 0x20


def build_krl(
    revoked: Mapping[bytes, Iterable[int]], *, version: int, generated_at: int, comment: str = ""
) -> bytes:
    """A KRL revoking, for each CA public key blob, the given certificate serials.

    Args:
        revoked: CA key blob -> serials it signed that are revoked.
        version: the KRL version number (monotonic, so newer lists are recognisable).
        generated_at: seconds since the epoch.
        comment: free text shown by `ssh-keygen -Q -l`.
    """
    out = u64(KRL_MAGIC) + u32(KRL_FORMAT_VERSION) + u64(version) + u64(generated_at) + u64(0)
    out += string(b"") + string(comment)
    for ca_key in sorted(revoked):
        serials = sorted({s for s in revoked[ca_key] if 0 < s < 2**64})
        if not serials:
            continue
        body = b"".join(u64(s) for s in serials)
        section = string(ca_key) + string(b"") + bytes([KRL_SECTION_CERT_SERIAL_LIST]) + string(body)
        out += bytes([KRL_SECTION_CERTIFICATES]) + string(section)
    return out
