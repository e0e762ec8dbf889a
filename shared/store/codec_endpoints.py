"""Endpoint records (one per client identity an authority issues to) as JSON documents and as SQL rows.

Split from `shared.store.codec` (which re-exports all of it) by record type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.model import Endpoint
from shared.store.codec_time import from_epoch_us, from_iso, to_epoch_us, to_iso


def endpoint_to_dict(endpoint: Endpoint) -> dict[str, Any]:
    """Encode an endpoint as a JSON-safe dict."""
    return {
        "id": endpoint.id,
        "authority_id": endpoint.authority_id,
        "provisioner_id": endpoint.provisioner_id,
        "subject_key": endpoint.subject_key,
        "name": endpoint.name,
        "created_at": to_iso(endpoint.created_at, "created_at"),
    }


def endpoint_from_dict(data: Mapping[str, Any]) -> Endpoint:
    """Decode `endpoint_to_dict`."""
    return Endpoint(
        id=data["id"],
        authority_id=data["authority_id"],
        provisioner_id=data["provisioner_id"],
        subject_key=data["subject_key"],
        name=data["name"],
        created_at=from_iso(data["created_at"]),
    )


ENDPOINT_COLUMNS = ("id", "authority_id", "provisioner_id", "subject_key", "name", "created_at")


def endpoint_to_row(endpoint: Endpoint) -> tuple[Any, ...]:
    """Encode an endpoint in `ENDPOINT_COLUMNS` order."""
    return (
        endpoint.id,
        endpoint.authority_id,
        endpoint.provisioner_id,
        endpoint.subject_key,
        endpoint.name,
        to_epoch_us(endpoint.created_at, "created_at"),
    )


def endpoint_from_row(row: tuple[Any, ...]) -> Endpoint:
    """Decode `endpoint_to_row`."""
    return Endpoint(
        id=row[0],
        authority_id=row[1],
        provisioner_id=row[2],
        subject_key=row[3],
        name=row[4],
        created_at=from_epoch_us(row[5]),
    )
