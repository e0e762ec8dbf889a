"""Revocation records as JSON documents and as SQL rows.

Split from `shared.store.codec` (which re-exports all of it) by record type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.model import Revocation
from shared.store.codec_time import from_epoch_us, from_iso, to_epoch_us, to_iso


def revocation_to_dict(revocation: Revocation) -> dict[str, Any]:
    """Encode a revocation as a JSON-safe dict."""
    return {
        "serial": revocation.serial,
        "authority_id": revocation.authority_id,
        "revoked_at": to_iso(revocation.revoked_at, "revoked_at"),
        "not_after": to_iso(revocation.not_after, "not_after"),
        "reason_code": int(revocation.reason_code),
        "reason": revocation.reason,
        "provisioner_id": revocation.provisioner_id,
        "mtls": bool(revocation.mtls),
    }


def revocation_from_dict(data: Mapping[str, Any]) -> Revocation:
    """Decode `revocation_to_dict`."""
    return Revocation(
        serial=data["serial"],
        authority_id=data["authority_id"],
        revoked_at=from_iso(data["revoked_at"]),
        not_after=from_iso(data["not_after"]),
        reason_code=int(data.get("reason_code", 0)),
        reason=data.get("reason", ""),
        provisioner_id=data.get("provisioner_id", ""),
        mtls=bool(data.get("mtls", False)),
    )


REVOCATION_COLUMNS = (
    "serial",
    "authority_id",
    "revoked_at",
    "not_after",
    "reason_code",
    "reason",
    "provisioner_id",
    "mtls",
)


def revocation_to_row(revocation: Revocation) -> tuple[Any, ...]:
    """Encode a revocation in `REVOCATION_COLUMNS` order."""
    return (
        revocation.serial,
        revocation.authority_id,
        to_epoch_us(revocation.revoked_at, "revoked_at"),
        to_epoch_us(revocation.not_after, "not_after"),
        int(revocation.reason_code),
        revocation.reason,
        revocation.provisioner_id,
        1 if revocation.mtls else 0,
    )


def revocation_from_row(row: tuple[Any, ...]) -> Revocation:
    """Decode `revocation_to_row`."""
    return Revocation(
        serial=row[0],
        authority_id=row[1],
        revoked_at=from_epoch_us(row[2]),
        not_after=from_epoch_us(row[3]),
        reason_code=row[4],
        reason=row[5],
        provisioner_id=row[6],
        mtls=bool(row[7]),
    )
