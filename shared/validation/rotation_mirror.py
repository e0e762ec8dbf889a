"""The rotation record's copy in the bucket, for OCSP responders without store access.

The deployed `ocsp` function reads only the bucket (it has no Firestore role),
as it does for CRLs, the serial index and its delegated certificate. So the
functions that do hold the store copy the rotation record
(`shared.rotation_record`) to `rotation/<authority id>.json` whenever they
publish CRLs and whenever `cirrus ca stage-intermediate | activate |
retire-intermediate` changes it, and the responder learns the intermediate
generations from that copy. The copy is checked as the record is: a staged
chain is used only if it reaches a configured root (`shared.rotation`). It
carries no key URIs (the bucket may be public): a responder signs for a
generation with its delegated responder certificate, or with the
generation's key where it can read the store and open that key.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from cryptography import x509

from shared.blobs.base import BlobStore, PreconditionFailed
from shared.errors import BackendError, ConfigError
from shared.rotation_record import COLLECTION

if TYPE_CHECKING:
    from shared.rotation import IntermediateRotation
    from shared.runtime import Services

_EXTRA = "rotation_mirror_view"
_FORWARDING = "rotation_forwarding_view"
_log = logging.getLogger(__name__)


def mirror_name(authority_id: str) -> str:
    """Where the copy is: beside the CRLs, under `rotation/`."""
    return f"rotation/{authority_id}.json"


class MirroredRecord:
    """`get_document` over the bucket copy (version = the blob's generation); read-only."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """The copied record, or None if there is none (or it is not a JSON object)."""
        if collection != COLLECTION:
            return None
        blob = self._blobs.read(mirror_name(doc_id))
        if blob is None:
            return None
        try:
            data = json.loads(blob.data)
        except ValueError:
            return None
        return (data, blob.generation) if isinstance(data, dict) else None

    def create_document(self, *_: Any, **__: Any) -> bool:
        """Read-only: the store is the arbiter."""
        raise NotImplementedError("the bucket copy of the rotation record is read-only")

    def update_document(self, *_: Any, **__: Any) -> bool:
        """Read-only: the store is the arbiter."""
        raise NotImplementedError("the bucket copy of the rotation record is read-only")


def mirror_rotation_record(services: Services) -> bool:
    """Copy the store's rotation record to the bucket if it differs; True if written."""
    from shared.validation.wiring import blobs

    if services.rotating is None:
        return False
    authority_id = services.settings.authority_id
    found = services.store.get_document(COLLECTION, authority_id)
    if found is None:
        return False
    record = dict(found[0])
    # Key URIs stay in the store: the bucket may be public, and a responder that can open a
    # generation's key reads the store anyway (`shared.validation.generations`).
    record["staged"] = [{**entry, "key": ""} for entry in record.get("staged", []) if isinstance(entry, dict)]
    data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    bucket = blobs(services)
    name = mirror_name(authority_id)
    current = bucket.read(name)
    if current is not None and current.data == data:
        return False
    try:
        bucket.write(name, data, content_type="application/json",
                     if_generation_match=current.generation if current is not None else 0)  # fmt: skip
    except PreconditionFailed:
        return False  # another publisher copied it meanwhile: theirs is at least as new
    return True


def forwarding_chain(services: Services) -> list[x509.Certificate]:
    """`/intermediates` of a function that forwards signing to the issuer function (`issuerURL`).

    Such a function has no key and builds no rotation of its own, so without this it
    would answer the configured intermediate during and after a rotation. It reads the
    bucket copy, as the OCSP responder does (and with the same recheck); a copy that
    cannot be read leaves the configured chain (logged), never a failed request.
    """
    view: IntermediateRotation | None = services.extras.get(_FORWARDING)
    if view is None:
        from shared.rotation import IntermediateRotation, chain_verifier
        from shared.rotation_record import Generation, config_generations, rotation_recheck
        from shared.validation.wiring import blobs

        settings = services.settings
        base = Generation(chain=tuple(services.intermediates), key_uri="", crl_id=settings.authority_id, base=True)
        view = services.extras.setdefault(_FORWARDING, IntermediateRotation(
            authority_id=settings.authority_id, base=base, documents=MirroredRecord(blobs(services)),
            clock_now=services.clock.now, verify=chain_verifier(services.roots),
            configured=config_generations(settings.raw.get("intermediates"), base_dir=settings.base_dir,
                                          authority_id=settings.authority_id),
            recheck=max(rotation_recheck(settings.raw.get("rotation")), _bucket_recheck(services)),
        ))  # fmt: skip
    try:
        return list(view.active().chain)
    except (BackendError, ConfigError, OSError) as exc:
        _log.warning("bucket copy of the rotation record not readable (%s); answering the configured chain", exc)
        return services.intermediates


def _bucket_recheck(services: Services) -> float:
    """A local folder answers with one stat(); object storage costs a request, so once a minute."""
    return 5.0 if services.settings.blobs.startswith("file:") else 60.0


def mirror_view(services: Services) -> IntermediateRotation | None:
    """The generations as the bucket copy has them (one view per instance; None without rotation)."""
    rotating = services.rotating
    if rotating is None:
        return None
    view: IntermediateRotation | None = services.extras.get(_EXTRA)
    if view is None:
        from shared.rotation import IntermediateRotation
        from shared.validation.wiring import blobs

        own = rotating.rotation
        recheck = _bucket_recheck(services)
        view = services.extras.setdefault(_EXTRA, IntermediateRotation(
            authority_id=own.authority_id, base=own.base, documents=MirroredRecord(blobs(services)),
            clock_now=own.clock_now, configured=own.configured, verify=own.verify, recheck=recheck,
        ))  # fmt: skip
    return view
