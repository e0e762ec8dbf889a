"""Where a certificate's revocation status is published.

One function decides which CRL shard a serial lands in and one spells the
URL, and both the certificate profile (CDP in every leaf) and the CRL builder
(IssuingDistributionPoint in every shard) call them, so the two URIs are
byte-identical by construction (CRL-07). The blob name is the URL's path under
the base URL: a bucket behind `https://storage.googleapis.com/<bucket>` and the
local server's `/crl` mount serve the same object at the same relative path.
"""

from __future__ import annotations

import re

from shared.decimal_text import parse_decimal

# fullmatch, never match with `$`: `$` also matches before a trailing newline,
# so `x\n` passed and became the object name `crl/x\n.crl`.
_AUTHORITY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def shard_for_serial(serial: int, shards: int) -> int:
    """The shard of `serial` when the CRL is split into `shards` parts.

    Serials are random (BR-01), so `serial mod shards` spreads them evenly and
    a relying party never needs more than one shard for one certificate.
    """
    if shards < 1:
        raise ValueError("shards must be at least 1")
    if serial < 0:
        raise ValueError("serials are positive")
    return serial % shards


def blob_name(authority_id: str, shard: int | None) -> str:
    """The object name a CRL is published under: `crl/<id>.crl` or `crl/<id>/<shard>.crl`."""
    if not _AUTHORITY_ID.fullmatch(authority_id):
        raise ValueError(f"authority id {authority_id!r} is not usable in a URL")
    if shard is None:
        return f"crl/{authority_id}.crl"
    if shard < 0:
        raise ValueError("shard must be non-negative")
    return f"crl/{authority_id}/{shard}.crl"


def crl_url(base_url: str, authority_id: str, shard: int | None) -> str:
    """The CRL distribution point URL for an authority (and shard, when partitioned).

    Args:
        base_url: where published CRLs are fetched from (the CA's HTTP origin
            or the bucket's public URL); a trailing slash is ignored.
        authority_id: the issuing authority.
        shard: `shard_for_serial(serial, shards)` for partitioned CRLs, None
            for the authority's single full CRL.
    """
    if not base_url.startswith(("http://", "https://")):
        raise ValueError("the CRL base URL must be an http(s) URL (CRL-09: plain http is best)")
    return f"{base_url.rstrip('/')}/{blob_name(authority_id, shard)}"


def parse_blob_path(path: str) -> tuple[str, int | None] | None:
    """Invert `blob_name` for a request path like `<id>.crl` or `<id>/<shard>.crl`.

    Returns None for anything else, so the HTTP layer can answer 404 without
    ever turning a client's path into an arbitrary object name.

    Raises:
        ValueError: the shard is not 1-6 ASCII digits (the HTTP layer's 400).
    """
    path = path.strip("/")
    if path.startswith("crl/"):
        path = path[4:]
    parts = path.split("/")
    if len(parts) == 1 and parts[0].endswith(".crl"):
        aid = parts[0][:-4]
        return (aid, None) if _AUTHORITY_ID.fullmatch(aid) else None
    if len(parts) == 2 and parts[1].endswith(".crl"):
        aid = parts[0]
        # ASCII digits only: "²" passed isdigit() and then failed int() (a 500).
        shard = parse_decimal(parts[1][:-4], max_digits=6)
        return (aid, shard) if _AUTHORITY_ID.fullmatch(aid) else None
    return None
