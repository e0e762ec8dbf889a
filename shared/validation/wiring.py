"""Factories that build the VA from the composition root's `Services`.

Each takes the `Services` object and returns one component, so the runtime can
build them lazily and once per instance: `services.lazy("crl_publisher",
crl_publisher)`, `services.lazy("ocsp", ocsp_endpoint)`,
`services.lazy("crl_http", crl_endpoint)`. Factories never call
`services.lazy` themselves (its lock is not re-entrant); each opens its own
blob-store handle, which is cheap. The CLI, the `crl_publish` and
`ocsp` Cloud Functions and the local server all go through these.

Settings used (`shared.config.CRLSettings`): `cache_duration` is the CRL
validity (step-ca's `crl.cacheDuration`), `publish_interval` the schedule,
`shards` (0 = one full CRL), `base_url` the CDP/IDP base.

With `ocsp.responderKey` set (`shared.config.OCSPSettings`) the responder signs
with that key and the delegated certificate `responder_rotator` keeps current in
the store and mirrors to the bucket, where the responder reads it
(`shared.validation.responder_cert`); the CA key is opened for OCSP
only as a fallback, and only where this instance holds it anyway.

Each factory imports what it builds: the CRL and serial-index publishers and the
delegated responder's certificate code are not imported with this module, so a cold
`ocsp` function's first answer loads none of them (unless a responder key is set).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from shared.errors import BackendError, ConfigError
from shared.validation.ocsp import OCSPAuthority, OCSPResponder
from shared.validation.ocsp_http import CRLEndpoint, OCSPEndpoint
from shared.validation.published import PublishedCRLs
from shared.validation.serial_index_reader import PublishedSerials

if TYPE_CHECKING:
    from shared.authorities import HostedAuthority
    from shared.blobs.base import BlobStore
    from shared.keys.base import Signer
    from shared.runtime import Services
    from shared.validation.publisher import CRLPublisher
    from shared.validation.responder_cert import ResponderRotator
    from shared.validation.serial_index import SerialIndexPublisher

_LOCAL_BASE = "http://127.0.0.1"
# The serial index's look-back between full ones: well past a commit's latency on one machine.
INDEX_QUICK_OVERLAP = dt.timedelta(seconds=15)
_log = logging.getLogger(__name__)


def blobs(services: Services) -> BlobStore:
    """The blob store the settings name (shared by publisher and responder)."""
    from shared.blobs.open import open_blobs

    settings = services.settings
    return open_blobs(settings.blobs, public_base_url=settings.crl.base_url or None)


def _signer(services: Services) -> Signer:
    from shared.runtime import open_signer

    settings = services.settings
    return open_signer(settings.key, password_file=settings.password_file)


def _responder_signer(services: Services) -> Signer | None:
    """The delegated OCSP responder's key, through the KeyManager its URI names (None if unset)."""
    from shared.keys.registry import KeyManagers

    settings = services.settings
    if not settings.ocsp.responder_key:
        return None
    return KeyManagers(password_file=settings.password_file).signer(settings.ocsp.responder_key)


def responder_rotator(services: Services) -> ResponderRotator | None:
    """Renews the delegated OCSP responder certificate; needs the CA key (None if no responder key)."""
    from shared.validation.generations import base_issuer
    from shared.validation.responder_cert import ResponderRotator

    settings = services.settings
    signer = _responder_signer(services)
    if signer is None:
        return None
    return ResponderRotator(
        documents=services.store,
        clock=services.clock,
        authority_id=settings.authority_id,
        issuer=base_issuer(services),  # the configured intermediate's, whichever generation issues now
        responder_key=signer.public_key(),
        lifetime=settings.ocsp.responder_lifetime,
        mirror=blobs(services),  # the ocsp function reads the bucket copy, never the store
    )


def _ca_key_fallback(services: Services) -> Signer | None:
    """The CA key for the OCSP fallback behind a responder key, if this instance can open it (else None).

    The deployed `ocsp` function holds a role on the responder key only, yet its
    config names the CA key like every function's: opening it fails there (KMS
    PermissionDenied), which means "no fallback" (tryLater until the delegated
    certificate is published), not "no OCSP".

    It opens the key alone, not the issuing authority around it: building that
    would import the whole issuing pipeline (provisioners, templates) into a
    responder that never issues, a cold start's worth of imports for a yes/no.

    The responder calls this on the first answer its delegated certificate does not cover (none
    is published yet), not when it is built: while one is, the key is never opened.
    """
    if services.authority_factory is None:  # behind an issuer link: the key is the issuer's
        return None
    try:
        ca = services.intermediates[0].public_key()
        signer = _signer(services)
        if signer.public_key().public_numbers() == ca.public_numbers():  # type: ignore[union-attr]
            return signer
    except (ConfigError, BackendError) as exc:
        _log.info("OCSP: the CA key is not usable here (%s); answering with the delegated responder only", exc)
        return None
    _log.info("OCSP: the key configured is not the CA certificate's; answering with the delegated responder only")
    return None


def _further(services: Services) -> tuple[HostedAuthority, ...]:
    """The deployment's further issuing authorities (`authorities`; shared.authorities): each
    gets its own CRL and OCSP identity, signed with its own key or its delegated responder."""
    if not services.settings.authorities:
        return ()
    from shared.authorities import hosted

    return hosted(services).others


def _further_signer(services: Services, authority: HostedAuthority) -> Signer:
    from shared.runtime import open_signer

    return open_signer(authority.settings.key, password_file=services.settings.password_file)


def _further_ocsp(services: Services, responder_signer: Signer | None = None) -> list[OCSPAuthority]:
    """The further authorities this instance answers OCSP for.

    With `ocsp.responderKey` each further authority has its own delegated responder
    certificate for that one key (issued by its CA, OCSP-05, as the default authority's and
    each intermediate generation's are), read from the bucket copy; its CA key, where this
    instance can open it, is the fallback. Without a responder key its CA key signs, and
    one whose key cannot be opened here (an `ocsp` function without a role on it) is left
    out, so its certificates get `unauthorized` rather than the whole responder failing.
    """
    answered = []
    for h in _further(services):
        signer: Signer | None
        try:
            signer = _further_signer(services, h)
        except (ConfigError, BackendError) as exc:
            if responder_signer is None:
                _log.warning("OCSP: no answers for authority %s: its key is not usable here (%s)", h.name, exc)
                continue
            signer = None  # the delegated responder answers; no CA-key fallback here
        delegated = None
        if responder_signer is not None:
            from shared.validation.responder_cert import BlobDocuments, DelegatedResponder

            delegated = DelegatedResponder(
                documents=BlobDocuments(blobs=blobs(services)), clock=services.clock, authority_id=h.authority_id,
                ca_certificate=h.certificate, responder_key=responder_signer.public_key(),
            )  # fmt: skip
        answered.append(OCSPAuthority(authority_id=h.authority_id, certificate=h.certificate, signer=signer,
                                      shards=services.settings.crl.shards, responder_signer=responder_signer,
                                      responder_certificates=delegated))  # fmt: skip
    return answered


def further_responder_rotators(services: Services) -> list[ResponderRotator]:
    """Rotators of the further authorities' delegated OCSP certificates (empty without a responder key).

    Run where CRLs are published (that path holds the further authorities' keys: it signs their CRLs).
    """
    signer = _responder_signer(services)
    if signer is None:
        return []
    from shared.validation.responder_cert import ResponderRotator

    return [
        ResponderRotator(
            documents=services.store, clock=services.clock, authority_id=h.authority_id,
            issuer=h.authority().issuer, responder_key=signer.public_key(),
            lifetime=services.settings.ocsp.responder_lifetime, mirror=blobs(services),
        )
        for h in _further(services)
    ]  # fmt: skip


def crl_publisher(services: Services) -> CRLPublisher:
    """The CRL publisher for the issuing authority."""
    from shared.validation.publisher import CRLAuthority, CRLPublisher, CRLSchedule  # not the responder's

    settings = services.settings
    if not settings.crl.enabled:
        raise ConfigError("CRLs are disabled in the configuration (crl.enabled)")
    base_url = settings.crl.base_url or settings.external_url or _LOCAL_BASE
    if settings.crl.shards and not settings.crl.base_url:
        raise ConfigError("crl.shards needs crl.baseURL (the shards' distribution points)")
    schedule = CRLSchedule(
        base_url=base_url,
        validity=settings.crl.cache_duration,
        interval=settings.crl.publish_interval,
    )
    authority = CRLAuthority(
        authority_id=settings.authority_id,
        certificate=services.intermediates[0],
        signer=_signer(services),
        shards=settings.crl.shards,
    )
    from shared.validation.generations import GenerationRevocations, crl_authorities, crl_ids

    return CRLPublisher(  # the base's CRL and one per staged intermediate generation (shared.rotation)
        revocations=GenerationRevocations(services.store, crl_ids(services)),
        counter=services.store,
        blobs=blobs(services),
        clock=services.clock,
        schedule=schedule,
        authorities=[authority, *crl_authorities(services, settings.crl.shards), *(
            CRLAuthority(authority_id=h.authority_id, certificate=h.certificate,
                         signer=_further_signer(services, h), shards=settings.crl.shards)
            for h in _further(services)
        )],
    )


def serial_index_publisher(services: Services) -> SerialIndexPublisher:
    """The publisher of the issued-serials index the OCSP responder reads (next to the CRLs)."""
    from shared.validation.serial_index import IssuedSince, SerialIndexPublisher  # the reader is apart

    store = services.store
    if not isinstance(store, IssuedSince):
        raise ConfigError("this store cannot list new issuances, so no serial index can be published")
    return SerialIndexPublisher(
        issued=store,
        blobs=blobs(services),
        clock=services.clock,
        authority_ids=[services.settings.authority_id, *(h.authority_id for h in _further(services))],
        # A long-lived publisher (`cirrus up` runs it every few seconds) looks back fully once
        # a minute; a scheduled function's runs are minutes apart, so each of them looks back fully.
        quick_overlap=INDEX_QUICK_OVERLAP,
    )


def ocsp_endpoint(services: Services) -> OCSPEndpoint:
    """The `/ocsp` handler: answers from the published CRLs and serial index, never the store's certificates."""
    settings = services.settings
    if settings.crl.shards and not settings.crl.base_url:
        raise ConfigError("crl.shards needs crl.baseURL (the shards' distribution points)")
    published = blobs(services)
    responder_signer = _responder_signer(services)
    delegated = None
    if responder_signer is not None:
        from shared.validation.responder_cert import BlobDocuments, DelegatedResponder

        delegated = DelegatedResponder(
            documents=BlobDocuments(blobs=published),
            clock=services.clock,
            authority_id=settings.authority_id,
            ca_certificate=services.intermediates[0],
            responder_key=responder_signer.public_key(),
        )
    from shared.validation.generations import GenerationSerials, crl_ids, ocsp_authorities

    # A local folder answers a generation check with one stat(); object storage costs a
    # request, so a function instance looks for a new CRL or serial index once a minute.
    recheck = dt.timedelta(seconds=5 if settings.blobs.startswith("file:") else 60)
    responder = OCSPResponder(
        authorities=[
            OCSPAuthority(
                authority_id=settings.authority_id,
                certificate=services.intermediates[0],
                signer=_signer(services) if responder_signer is None else None,
                shards=settings.crl.shards,
                responder_signer=responder_signer,
                responder_certificates=delegated,
                ca_key_fallback=None if responder_signer is None else lambda: _ca_key_fallback(services),
            ),
            *ocsp_authorities(services, settings.crl.shards, responder_signer),  # staged generations
            *_further_ocsp(services, responder_signer),  # further issuing authorities
        ],
        crls=PublishedCRLs(blobs=published, clock=services.clock, recheck=recheck),
        issued=GenerationSerials(
            PublishedSerials(blobs=published, clock=services.clock, recheck=recheck), crl_ids(services, published=True)
        ),
        clock=services.clock,
        crl_base_url=settings.crl.base_url or None,
    )
    return OCSPEndpoint(responder=responder, clock=services.clock)


def crl_endpoint(services: Services) -> CRLEndpoint:
    """The `/crl` handler."""
    settings = services.settings
    return CRLEndpoint(
        blobs=blobs(services),
        clock=services.clock,
        default_authority_id=None if settings.crl.shards else settings.authority_id,
    )
