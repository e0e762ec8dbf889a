"""Publishes the SSH KRL beside the CRLs: `krl/<authority id>.krl` in the blob store.

Runs with every CRL publication (`cirrus crl publish`, the schedule in `cirrus
up`, the `crl_publish` Function). As for CRLs, the write carries a generation
precondition, so two publishers never overwrite each other's newer list, and
the KRL version comes from the store's counter, so it only increases.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.blobs.base import PreconditionFailed

log = logging.getLogger("cirrus.ssh")

KRL_CONTENT_TYPE = "application/octet-stream"


def krl_blob_name(authority_id: str) -> str:
    """Where an authority's KRL is published."""
    from shared.validation.partition import blob_name

    blob_name(authority_id, None)  # the same check that the id is usable in a URL
    return f"krl/{authority_id}.krl"


def publish_krl(services: Any) -> int | None:
    """Build and write the KRL; return its version, or None (no SSH keys, or a newer one was written)."""
    from shared.api.ssh import _authority
    from shared.validation.wiring import blobs

    authority = _authority(services)
    if authority is None:
        return None
    store = blobs(services)
    name = krl_blob_name(services.settings.authority_id)
    current = store.read(name)
    version = int(services.store.next_value(f"krl:{services.settings.authority_id}"))
    data = authority.krl(version=version)
    max_age = int(services.settings.crl.publish_interval.total_seconds())
    try:
        store.write(
            name,
            data,
            content_type=KRL_CONTENT_TYPE,
            if_generation_match=current.generation if current is not None else 0,
            cache_control=f"public, max-age={max_age}, no-transform",
        )
    except PreconditionFailed:
        log.info("another publisher wrote the KRL first")
        return None
    return version
