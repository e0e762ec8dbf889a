"""A tiny DER encoder and reader for the few shapes CRLs need.

Why hand-rolled: cryptography's `CertificateRevocationListBuilder` is
immutable and copies its entry list on every `add_revoked_certificate`, so
building a CRL is quadratic (100,000 entries took 12.5 s; a million would take
about 20 minutes, DESIGN.md s.6). A revoked entry is three primitives
(INTEGER, Time, optional reasonCode), so encoding them directly is linear and
cheap, and reading them back (the OCSP responder indexes a published CRL) is
a short loop over definite lengths. Everything richer (extension values,
signature checks) is still done by cryptography.

Only definite-length, low-tag-number DER is handled; that is all X.509 uses.
"""

from __future__ import annotations

import datetime as dt

SEQUENCE = 0x30
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
ENUMERATED = 0x0A
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
BOOLEAN_TRUE = b"\x01\x01\xff"


class DERError(ValueError):
    """The bytes are not the DER shape the caller expected."""


def length(n: int) -> bytes:
    """Encode a definite length (short form below 128, long form above)."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    """Encode one element with a low tag number."""
    return bytes((tag,)) + length(len(body)) + body


def integer(n: int) -> bytes:
    """Encode a non-negative INTEGER in its minimal two's-complement form."""
    if n < 0:
        raise ValueError("negative integers are not used here")
    return tlv(INTEGER, n.to_bytes((n.bit_length() + 8) // 8, "big"))


def oid(dotted: str) -> bytes:
    """Encode an OBJECT IDENTIFIER from its dotted form."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2:
        raise ValueError("an OID has at least two arcs")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return tlv(OID, bytes(out))


def time(t: dt.datetime) -> bytes:
    """Encode a Time the way RFC 5280 s.4.1.2.5 requires.

    UTCTime for 1950-2049, GeneralizedTime otherwise; always UTC, whole
    seconds, `Z` suffix (the same choice cryptography makes for certificates,
    so a CRL's times match the certificates' encodings, CRL-02).
    """
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    if t.utcoffset() != dt.timedelta(0):
        t = t.astimezone(dt.UTC)
    if 1950 <= t.year < 2050:
        return b"\x17\x0d%02d%02d%02d%02d%02d%02dZ" % (
            t.year % 100,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
        )
    return b"\x18\x0f%04d%02d%02d%02d%02d%02dZ" % (
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
    )


def read_tlv(buf: bytes | memoryview, pos: int, end: int | None = None) -> tuple[int, int, int]:
    """Read the element at `pos`; return `(tag, content_start, content_end)`.

    Raises DERError for truncated input, indefinite lengths or high tag
    numbers, so a corrupted artefact is refused rather than misread.
    """
    limit = len(buf) if end is None else end
    if pos + 2 > limit:
        raise DERError("truncated element")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("high tag numbers are not supported")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > limit:
            raise DERError("bad length")
        size = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + size > limit:
        raise DERError("element overruns its container")
    return tag, pos, pos + size


def expect(buf: bytes | memoryview, pos: int, tag: int, end: int | None = None) -> tuple[int, int]:
    """Read the element at `pos`, require `tag`, return `(content_start, content_end)`."""
    got, start, stop = read_tlv(buf, pos, end)
    if got != tag:
        raise DERError(f"expected tag {tag:#04x}, found {got:#04x}")
    return start, stop


def parse_time(raw: bytes | memoryview) -> dt.datetime:
    """Decode a whole UTCTime or GeneralizedTime element (tag included)."""
    tag, start, stop = read_tlv(raw, 0)
    text = bytes(raw[start:stop]).decode("ascii")
    if tag == UTC_TIME and len(text) == 13 and text.endswith("Z"):
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        rest = text[2:12]
    elif tag == GENERALIZED_TIME and len(text) == 15 and text.endswith("Z"):
        year = int(text[:4])
        rest = text[4:14]
    else:
        raise DERError("unsupported time encoding")
    return dt.datetime(
        year,
        int(rest[0:2]),
        int(rest[2:4]),
        int(rest[4:6]),
        int(rest[6:8]),
        int(rest[8:10]),
        tzinfo=dt.UTC,
    )
