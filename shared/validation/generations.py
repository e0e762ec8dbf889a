"""CRLs and OCSP for every intermediate generation of the authority (shared/rotation.py).

Each generation's CRL has its own id (`Generation.crl_id`), its own blob, its
own cRLNumber counter, and is signed by that generation's key; the base keeps
the authority's own id. Revocations and the issued-serials index are kept per
authority, so the two adaptors here map a generation's CRL id back to the
authority id when the publisher or responder asks for them (see the rotation
module for why every generation's CRL may list all of the authority's revoked
serials).

The OCSP responder learns the generations from the bucket copy of the
rotation record (`shared.validation.rotation_mirror`), because the deployed
`ocsp` function has no store access.

With a delegated OCSP responder key (`ocsp.responderKey`), each generation
gets its own delegated responder certificate, issued by that generation (a
delegated responder must be certified by the CA whose certificates it answers
for, OCSP-05) and stored under the generation's CRL id; the deployed `ocsp`
function, which holds only the responder key, answers with it. Without one, a
generation whose key this instance cannot open is left out and logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from shared.errors import BackendError, ConfigError
from shared.model import Revocation
from shared.store.base import RevocationReader
from shared.validation.ocsp import IssuedSerials, OCSPAuthority

if TYPE_CHECKING:
    from shared.keys.base import Signer
    from shared.rotation_record import Generation
    from shared.runtime import Services
    from shared.validation.publisher import CRLAuthority
    from shared.validation.responder_cert import BlobDocuments, ResponderRotator
    from shared.x509.profile import Issuer

_log = logging.getLogger(__name__)


def staged_generations(services: Services, *, published: bool = False) -> list[Generation]:
    """The generations other than the base (empty without rotation, or when the record cannot be read).

    `published`: as the bucket copy has them (`shared.validation.rotation_mirror`), for
    the OCSP responder, which may have no store access; else as the store has them.
    """
    from shared.validation.rotation_mirror import mirror_view

    rotating = services.rotating
    if rotating is None:
        return []
    view = mirror_view(services) if published else rotating.rotation
    try:
        return [g for g in view.generations() if not g.base] if view is not None else []
    except (BackendError, ConfigError) as exc:
        _log.warning("intermediate generations not readable (%s); CRL/OCSP for the base only", exc)
        return []


def lazy_name(services: Services, name: str, *, published: bool = False) -> str:
    """`name` for `Services.lazy`, changed when the set of generations changes (so it is rebuilt)."""
    staged = staged_generations(services, published=published)
    if not staged:
        return name
    digest = hashlib.sha256("".join(g.fingerprint for g in staged).encode()).hexdigest()[:16]
    return f"{name}:{digest}"


def _opened(
    services: Services, generations: Sequence[Generation], *, quiet: bool = False
) -> list[tuple[Generation, Signer]]:
    from shared.runtime import open_signer

    out: list[tuple[Generation, Signer]] = []
    for gen in generations:
        try:
            out.append((gen, open_signer(gen.key_uri, password_file=services.settings.password_file)))
        except (ConfigError, BackendError) as exc:
            log = _log.info if quiet else _log.warning  # quiet: a delegated responder answers instead
            log("intermediate %s: key not usable here (%s)", gen.crl_id, exc)
    return out


def crl_authorities(services: Services, shards: int) -> list[CRLAuthority]:
    """One CRL scope per staged generation, signed by its own key."""
    from shared.validation.publisher import CRLAuthority  # the publisher's, not the responder's

    return [
        CRLAuthority(authority_id=g.crl_id, certificate=g.certificate, signer=signer, shards=shards)
        for g, signer in _opened(services, staged_generations(services))
    ]


def ocsp_authorities(services: Services, shards: int, responder_signer: Signer | None = None) -> list[OCSPAuthority]:
    """One OCSP issuer per staged generation.

    With a responder key, each generation has its own delegated responder
    certificate (issued by that generation, OCSP-05), read as the base's is;
    its own key signs where this instance holds it, as the fallback.
    """
    out = []
    published = staged_generations(services, published=True)
    # Key URIs come from the store, where this instance can read it (not in the deployed `ocsp`).
    keys = {g.fingerprint: g for g in staged_generations(services)} if published else {}
    for gen in published:
        with_key = keys.get(gen.fingerprint)
        opened = _opened(services, [with_key], quiet=responder_signer is not None) if with_key is not None else []
        signer = opened[0][1] if opened else None
        if signer is None and responder_signer is None:
            continue
        delegated = None
        if responder_signer is not None:
            from shared.validation.responder_cert import DelegatedResponder

            delegated = DelegatedResponder(
                documents=_responder_documents(services), clock=services.clock, authority_id=gen.crl_id,
                ca_certificate=gen.certificate, responder_key=responder_signer.public_key(),
            )  # fmt: skip
        out.append(OCSPAuthority(authority_id=gen.crl_id, certificate=gen.certificate, signer=signer, shards=shards,
                                 responder_signer=responder_signer, responder_certificates=delegated))  # fmt: skip
    return out


def _responder_documents(services: Services) -> BlobDocuments:
    """Where responders read delegated certificates: the bucket copy the rotators mirror (as for the base)."""
    from shared.validation.responder_cert import BlobDocuments
    from shared.validation.wiring import blobs

    return BlobDocuments(blobs=blobs(services))


def base_issuer(services: Services) -> Issuer:
    """The configured (base) intermediate's issuer, even after another generation took over issuance."""
    rotating = services.rotating
    if rotating is None:
        return services.issuing().issuer
    return rotating.for_generation(rotating.rotation.base).issuer


def generation_responder_rotators(services: Services) -> list[ResponderRotator]:
    """Rotators of the staged generations' delegated OCSP certificates (empty without a responder key)."""
    from shared.validation.responder_cert import ResponderRotator
    from shared.validation.wiring import _responder_signer, blobs

    signer = _responder_signer(services)
    rotating = services.rotating
    if signer is None or rotating is None:
        return []
    out = []
    for gen in staged_generations(services):
        out.append(ResponderRotator(
            documents=services.store, clock=services.clock, authority_id=gen.crl_id,
            issuer=rotating.for_generation(gen).issuer, responder_key=signer.public_key(),
            lifetime=services.settings.ocsp.responder_lifetime, mirror=blobs(services),
        ))  # fmt: skip
    return out


def crl_ids(services: Services, *, published: bool = False) -> dict[str, str]:
    """Generation CRL id -> authority id."""
    return {g.crl_id: services.settings.authority_id for g in staged_generations(services, published=published)}


class GenerationRevocations:
    """The store's revocations, listed for a generation's CRL id as for its authority."""

    def __init__(self, inner: RevocationReader, ids: Mapping[str, str]) -> None:
        self._inner = inner
        self._ids = dict(ids)

    def get_revocation(self, serial: str) -> Revocation | None:
        """As the store answers."""
        return self._inner.get_revocation(serial)

    def list_revocations(self, authority_id: str, *, not_after_since: dt.datetime) -> Sequence[Revocation]:
        """The authority's revocations, for its own id or a generation's."""
        return self._inner.list_revocations(self._ids.get(authority_id, authority_id), not_after_since=not_after_since)

    def revoked_since(self, since: dt.datetime) -> bool:
        """As the store answers."""
        return self._inner.revoked_since(since)


class GenerationSerials:
    """The published serial index, asked for a generation's CRL id as for its authority."""

    def __init__(self, inner: IssuedSerials, ids: Mapping[str, str]) -> None:
        self._inner = inner
        self._ids = dict(ids)

    def is_issued(self, authority_id: str, serial: int) -> bool:
        """Whether the authority issued `serial`."""
        return self._inner.is_issued(self._ids.get(authority_id, authority_id), serial)
