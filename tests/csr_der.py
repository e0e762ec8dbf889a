"""Hand-built DER for CSRs that `cryptography`'s builder refuses to write.

The builder validates what it writes (a CN of at most 64 characters, one SAN
extension, version 0), so hostile CSRs are assembled here from TLVs and signed
with a real key: the CA must refuse them for what they are, not for a bad
signature. A small TLV reader lets the property tests mutate a CSR's structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
BIT_STRING = 0x03
OID = 0x06
UTF8 = 0x0C
BOOLEAN = 0x01

OID_CN = "2.5.4.3"
OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
OID_SAN = "2.5.29.17"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_len(len(content)) + content


def seq(*parts: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    return tlv(SET, b"".join(parts))


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def integer(n: int) -> bytes:
    body = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)
    return tlv(INTEGER, body)


def name_cn(cn: str) -> bytes:
    return seq(set_of(seq(oid(OID_CN), tlv(UTF8, cn.encode()))))


def extension(ext_oid: str, value: bytes, critical: bool = False) -> bytes:
    crit = tlv(BOOLEAN, b"\xff") if critical else b""
    return seq(oid(ext_oid), crit, tlv(OCTET_STRING, value))


def san_value(*general_names: bytes) -> bytes:
    """A GeneralNames SEQUENCE; each item is a context-tagged TLV (see `dns`, `ip`, `uri`, `email`)."""
    return seq(*general_names)


def dns(name: str) -> bytes:
    return tlv(0x82, name.encode("latin-1"))


def ip(raw: bytes) -> bytes:
    return tlv(0x87, raw)


def uri(value: str) -> bytes:
    return tlv(0x86, value.encode("latin-1"))


def email(value: str) -> bytes:
    return tlv(0x81, value.encode("latin-1"))


def extension_request(*extension_sets: bytes) -> bytes:
    """The extensionRequest attribute; each argument is one attribute value (an Extensions SEQUENCE)."""
    return seq(oid(OID_EXTENSION_REQUEST), set_of(*extension_sets))


_KEY: dict[str, Any] = {}


def signing_key() -> ec.EllipticCurvePrivateKey:
    key = _KEY.get("ec")
    if key is None:
        key = _KEY["ec"] = ec.generate_private_key(ec.SECP256R1())
    return key  # type: ignore[no-any-return]


def spki(key: Any) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def request_info(subject: bytes, attributes: list[bytes], *, version: int = 0, key: Any = None) -> bytes:
    return seq(integer(version), subject, spki(key or signing_key()), tlv(0xA0, b"".join(attributes)))


def signed_csr(info: bytes, key: Any = None) -> bytes:
    """Sign a CertificationRequestInfo with ECDSA-SHA256 (P-256 key) into a CSR's DER."""
    key = key or signing_key()
    sig = key.sign(info, ec.ECDSA(hashes.SHA256()))
    return seq(info, seq(oid(OID_ECDSA_SHA256)), tlv(BIT_STRING, b"\x00" + sig))


def csr(
    *,
    cn: str | None = "app.example.com",
    attributes: list[bytes] | None = None,
    version: int = 0,
) -> bytes:
    """A signed CSR from parts; default one SAN extension naming `app.example.com`."""
    if attributes is None:
        attributes = [extension_request(seq(extension(OID_SAN, san_value(dns("app.example.com")))))]
    subject = name_cn(cn) if cn is not None else seq()
    return signed_csr(request_info(subject, attributes, version=version))


def hostile_csrs(name: bytes, cn: str | None) -> dict[str, tuple[bytes, str]]:
    """Issue 12's hostile CSRs around one legitimate SAN `name` (a GeneralName TLV) and `cn`.

    Each maps to (DER, words the CA's 400 message must contain). Every one is
    validly signed, so only the named rule is broken.
    """

    def san_csr(*names: bytes, subject_cn: str | None = cn) -> bytes:
        return csr(cn=subject_cn, attributes=[extension_request(seq(extension(OID_SAN, san_value(*names))))])

    good = extension(OID_SAN, san_value(name))
    one = [extension_request(seq(good))]
    return {
        "version_2": (csr(cn=cn, attributes=one, version=2), "version"),
        "ip_san_5_bytes": (san_csr(name, ip(b"\x0a\x00\x00\x01\x01")), "subjectAltName"),
        "ip_san_network": (san_csr(name, ip(b"\x0a\x00\x00\x00\xff\xff\xff\x00")), "iPAddress"),
        "cn_65_chars": (san_csr(name, subject_cn="a" * 65), "common name"),
        "cn_with_nul": (san_csr(name, subject_cn="app\x00.example.com"), "control character"),
        "san_twice": (csr(cn=cn, attributes=[extension_request(seq(good, good))]), "more than once"),
        "san_cut_short": (
            csr(cn=cn, attributes=[extension_request(seq(extension(OID_SAN, san_value(name)[:-3])))]),
            "subjectAltName",
        ),
        "extension_request_two_values": (
            csr(cn=cn, attributes=[extension_request(seq(good), seq(good))]),
            "several values",
        ),
        # item 4: names of the wrong shape for their type
        "uri_with_nul": (san_csr(name, uri("spiffe://example.org/a\x00b")), "URI"),
        "uri_with_newline": (san_csr(name, uri("https://a.example/\nb")), "URI"),
        "ip_literal_as_dns": (san_csr(name, dns("10.0.0.1")), "IP address"),
        "email_without_at": (san_csr(name, email("app.example.com")), "email"),
    }


def pem(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"


@dataclass(frozen=True)
class Node:
    """One TLV in a DER buffer: where it starts, where its content starts and ends."""

    start: int
    header_end: int
    end: int
    tag: int


def walk(der: bytes) -> list[Node]:
    """Every TLV of `der` (pre-order), descending into constructed ones; stops quietly at bad lengths."""
    out: list[Node] = []

    def parse(pos: int, limit: int) -> None:
        while pos < limit:
            if pos + 2 > limit:
                return
            tag = der[pos]
            first = der[pos + 1]
            hdr = pos + 2
            if first < 0x80:
                length = first
            else:
                n = first & 0x7F
                if n == 0 or n > 4 or hdr + n > limit:
                    return
                length = int.from_bytes(der[hdr : hdr + n], "big")
                hdr += n
            end = hdr + length
            if end > limit:
                return
            out.append(Node(pos, hdr, end, tag))
            if tag & 0x20:
                parse(hdr, end)
            pos = end

    parse(0, len(der))
    return out
