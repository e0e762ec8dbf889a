"""CRLs and OCSP for every intermediate generation of the authority (shared/rotation.py).

Each generation's CRL has its own id (`Generation.crl_id`), its own blob, its
own cRLNumber counter, and is signed by that generation's key; the base keeps
the authority's own id. Revocations and the issued-serials index are kept per
authority, so the two adaptors here map a generation's CRL id back to the
authority id when the publisher or responder asks for them (see the rotation
module for why every generation's CRL may list all of the authority's revoked
serials).

A generation whose key this instance cannot open (the deployed `ocsp`
function holds only its responder key) is left out and logged: OCSP answers
`unauthorized` for its certificates there, as for any CA it does not serve.
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
from shared.validation.publisher import CRLAuthority

if TYPE_CHECKING:
    from shared.keys.base import Signer
    from shared.rotation import Generation
    from shared.runtime import Services

_log = logging.getLogger(__name__)


def staged_generations(services: Services) -> list[Generation]:
    """The generations other than the base (empty without rotation, or when the record cannot be read)."""
    rotating = services.rotating
    if rotating is None:
        return []
    try:
        return [g for g in rotating.rotation.generations() if not g.base]
    except (BackendError, ConfigError) as exc:
        _log.warning("intermediate generations not readable (%s); CRL/OCSP for the base only", exc)
        return []


def lazy_name(services: Services, name: str) -> str:
    """`name` for `Services.lazy`, changed when the set of generations changes (so it is rebuilt)."""
    staged = staged_generations(services)
    if not staged:
        return name
    digest = hashlib.sha256("".join(g.fingerprint for g in staged).encode()).hexdigest()[:16]
    return f"{name}:{digest}"


def _opened(services: Services, generations: Sequence[Generation]) -> list[tuple[Generation, Signer]]:
    from shared.runtime import open_signer

    out: list[tuple[Generation, Signer]] = []
    for gen in generations:
        try:
            out.append((gen, open_signer(gen.key_uri, password_file=services.settings.password_file)))
        except (ConfigError, BackendError) as exc:
            _log.warning("intermediate %s: key not usable here (%s); no CRL/OCSP for it", gen.crl_id, exc)
    return out


def crl_authorities(services: Services, shards: int) -> list[CRLAuthority]:
    """One CRL scope per staged generation, signed by its own key."""
    return [
        CRLAuthority(authority_id=g.crl_id, certificate=g.certificate, signer=signer, shards=shards)
        for g, signer in _opened(services, staged_generations(services))
    ]


def ocsp_authorities(services: Services, shards: int) -> list[OCSPAuthority]:
    """One OCSP issuer per staged generation, its responses signed by its own key."""
    return [
        OCSPAuthority(authority_id=g.crl_id, certificate=g.certificate, signer=signer, shards=shards)
        for g, signer in _opened(services, staged_generations(services))
    ]


def crl_ids(services: Services) -> dict[str, str]:
    """Generation CRL id -> authority id."""
    return {g.crl_id: services.settings.authority_id for g in staged_generations(services)}


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
