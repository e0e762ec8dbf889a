"""The composition root: settings in, wired services out (once per process).

Nothing else constructs backends. Every heavy import (a store backend, a KMS
client) happens here, lazily, for what the settings name; a Cloud Function
instance builds its `Services` on first use and keeps them for its lifetime.

The provisioners, the issuance policies and the revoker are built on first use
too (`Once`): the OCSP responder, the CRL publisher and the dashboard's
sign-in never verify a token, and building the provisioners imports PyJWT and
every provisioner's claims and policy code, a measurable share of a cold
start. So is the store in a Cloud Function: the OCSP responder answers from the
bucket and never opens it (shared.store.deferred). `build_services(...,
deferred=False)` (the default, which the CLI and `cirrus up` use) still builds
them before returning, so a wrong provisioner block or store URL fails at start
there; a Cloud Function reports it on the first request that needs it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509

from shared.clock import Clock, SystemClock
from shared.config import Settings
from shared.errors import BackendError, ConfigError
from shared.events.base import EventSink
from shared.once import Once
from shared.provisioners.audience import Audiences
from shared.store.base import Store
from shared.store.deferred import DocumentsWhenUsed
from shared.store.open import open_store

if TYPE_CHECKING:
    from shared.authority import Authority
    from shared.issuer_link import IssuerLink
    from shared.keys.base import Signer
    from shared.policy.issuance import IssuancePolicies
    from shared.provisioners.registry import Provisioners
    from shared.ra import UpstreamCA
    from shared.revocation import Revoker
    from shared.rotation import RotatingIssuer


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Read a PEM bundle.

    Raises:
        ConfigError: unreadable or empty.
    """
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read certificates from {path}") from exc
    if not certs:
        raise ConfigError(f"no certificates in {path}")
    return certs


def open_signer(uri: str, *, password_file: Path | None) -> Signer:
    """Open the signing key a URI names, importing only that backend (softkms, cloudkms, ...).

    Raises:
        ConfigError: unknown scheme or missing key.
    """
    from shared.keys.registry import open_key_manager

    return open_key_manager(uri, password_file=password_file).signer(uri)


def audience_hosts(settings: Settings) -> list[str]:
    """Host names tokens may name in `aud`: dnsNames plus the external URL's host."""
    hosts = list(settings.dns_names)
    if settings.external_url:
        host = urlsplit(settings.external_url).hostname
        if host:
            hosts.append(host)
    return hosts


@dataclass
class Services:
    """Everything a request handler may use."""

    settings: Settings
    clock: Clock
    deferred_store: Once[Store]
    authority_factory: Callable[[], Authority] | None
    deferred_revoker: Once[Revoker]
    deferred_provisioners: Once[Provisioners]
    audiences: Audiences
    roots: list[x509.Certificate]
    intermediates: list[x509.Certificate]
    issuer_link: IssuerLink | None = None
    sinks: list[EventSink] = field(default_factory=list)
    ra_upstream: UpstreamCA | None = None  # registration authority mode (shared.ra)
    rotating: RotatingIssuer[Authority] | None = None  # intermediate generations (shared.rotation)
    extras: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def store(self) -> Store:
        """The store the settings name, opened on first use in a Cloud Function (the responder never does).

        Raises:
            ConfigError: a store URL that cannot be opened.
        """
        return self.deferred_store.get()

    @property
    def provisioners(self) -> Provisioners:
        """The configured provisioners, built (configs checked, PyJWT imported) on first use.

        Raises:
            ConfigError: a provisioner block that cannot be built.
        """
        return self.deferred_provisioners.get()

    @property
    def revoker(self) -> Revoker:
        """`/revoke`'s pipeline, built on first use (it needs the provisioners)."""
        return self.deferred_revoker.get()

    def lazy(self, name: str, factory: Any) -> Any:
        """Build an optional component (VA, ACME) once, on first use."""
        with self._lock:
            if name not in self.extras:
                self.extras[name] = factory(self)
            return self.extras[name]

    @property
    def authority(self) -> Authority | None:
        """The in-process issuing authority, built (key opened) on first use; None behind an issuer link.

        Functions that never sign (OCSP with a delegated responder, the sweep) never open
        the CA key, which for Cloud KMS saves a GetPublicKey call at cold start.
        """
        if self.authority_factory is None:
            return None
        if self.rotating is not None:  # the generation active now, re-read with a short TTL
            return self.rotating.current()
        built: Authority = self.lazy("authority", lambda _s: self.authority_factory())
        return built

    @authority.setter
    def authority(self, value: Authority) -> None:
        """Replace the issuing authority (tests wire one with a different key backend)."""
        with self._lock:
            self.extras["authority"] = value
            self.rotating = None
        if self.authority_factory is None:
            self.authority_factory = lambda: value

    def active_intermediates(self) -> list[x509.Certificate]:
        """The chain of the intermediate issuing now (`/intermediates`); no key is opened for it."""
        if self.rotating is None:
            if self.issuer_link is not None:  # a forwarding function: the bucket copy of the record
                from shared.validation.rotation_mirror import forwarding_chain

                return forwarding_chain(self)
            return self.intermediates
        return list(self.rotating.rotation.active().chain)

    def issuing(self) -> Authority:
        """The in-process issuing authority.

        Raises:
            ConfigError: this instance forwards to an issuer function instead.
        """
        authority = self.authority
        if authority is None:
            raise ConfigError("this instance has no signing key; requests go to the issuer function")
        return authority

    def expiry_alerts(self) -> int:
        """Raise the `endpoint.expiring` / `endpoint.expired` alerts due now; return how many."""
        from shared.alerts import AlertStores, run_authority_alerts, run_expiry_alerts

        stores = AlertStores(
            expiring=self.store,  # type: ignore[arg-type]
            certificates=self.store,
            revocations=self.store,
            ledger=self.store,
            events=self.store,
        )
        from shared.linked.registry import linked_authority_ids

        # Linked authorities' certificates are alerted on like this authority's own (shared.linked).
        authority_ids = [self.settings.authority_id, *(a.authority_id for a in self.settings.authorities),
                         *linked_authority_ids(self.store)]
        return sum(
            len(
                run_expiry_alerts(
                    stores,
                    authority_id=authority_id,
                    now=self.clock.now(),
                    windows=self.settings.alert_windows,
                    sinks=self.sinks,
                )
            )
            for authority_id in authority_ids
        ) + sum(
            len(
                run_authority_alerts(
                    certificates,
                    authority_id=authority_id,
                    ledger=self.store,
                    events=self.store,
                    now=self.clock.now(),
                    sinks=self.sinks,
                )
            )
            for authority_id, certificates in self._ca_certificates()
        )

    def _ca_certificates(self) -> list[tuple[str, list[x509.Certificate]]]:
        """Each authority's CA certificates to warn about (the roots with the default authority's).

        The default authority's are every intermediate generation's chain (shared.rotation): a
        staged successor that lapses before it is activated strands the rotation, and an old
        generation still signs CRLs and OCSP answers for its certificates.
        """
        own = [*self.intermediates]
        if self.rotating is not None:
            try:
                own.extend(c for gen in self.rotating.rotation.generations() for c in gen.chain if c not in own)
            except (BackendError, ConfigError) as exc:  # the configured chain is still checked
                logging.getLogger(__name__).warning("intermediate generations not readable for alerts: %s", exc)
        found = [(self.settings.authority_id, [*own, *self.roots])]
        if self.settings.authorities:
            from shared.authorities import hosted

            found.extend((h.authority_id, h.intermediates) for h in hosted(self).others)
        return found

    def redeliver_events(self) -> int:
        """Retry events a sink failed to take, and linked revocations not delivered (due ones); return how
        many were delivered now."""
        from shared.events.delivery import TrackedSink, redeliver
        from shared.linked.revoke import LinkedRevoker

        tracked = [s for s in self.sinks if isinstance(s, TrackedSink)]
        # Revocations made here of linked authorities' certificates that did not reach them yet.
        linked = LinkedRevoker(store=self.store, clock=self.clock, sinks=self.sinks).retry_due()  # type: ignore[arg-type]
        return redeliver(tracked, now=self.clock.now()).delivered + linked

    def close(self) -> None:
        """Release backends (a store never opened is not opened to be closed)."""
        if self.deferred_store.built:
            self.store.close()


def build_services(settings: Settings, *, clock: Clock | None = None, store: Store | None = None,
                   deferred: bool = False) -> Services:  # fmt: skip
    """Wire every service from settings.

    With `issuerURL` set (the serverless registration-authority shape) no signing
    key is opened: requests that need a signature go to the private issuer function.
    `deferred` leaves the store, the provisioners, policies and revoker to their first use
    (a Cloud Function instance, whose first request may never need them: the OCSP
    responder answers from the bucket).

    Raises:
        ConfigError: anything in the settings that cannot be built.
    """
    clock = clock or SystemClock()
    roots = [c for path in settings.roots for c in load_certificates(path)]
    intermediates = load_certificates(settings.intermediate)
    given = store
    opened_store: Once[Store] = Once(lambda: given or open_store(settings.store, clock=clock))
    if not deferred or given is not None:
        opened_store.get()  # a store URL that cannot be opened stops the CLI and `cirrus up` at start
    documents = DocumentsWhenUsed(opened_store.get)  # for what is wired now and reads documents later
    audiences = Audiences(audience_hosts(settings))

    def build_provisioners() -> Provisioners:
        from shared.provisioners.registry import Provisioners

        return Provisioners(settings.provisioners, global_claims=settings.global_claims, audiences=audiences,
                            base_dir=settings.base_dir)  # fmt: skip

    provisioners = Once(build_provisioners)

    def build_policy() -> IssuancePolicies:
        from shared.policy.issuance import IssuancePolicies

        return IssuancePolicies.build((settings.raw.get("authority") or {}).get("policy"), provisioners.get())

    policy = Once(build_policy)
    from shared.events.delivery import track
    from shared.events.log import open_sinks

    opened: list[EventSink] = open_sinks(settings.event_sinks)  # type: ignore[assignment]
    named: list[tuple[str, EventSink]] = list(zip(settings.event_sinks, opened, strict=True))
    if settings.raw.get("linked") is not None:  # linked mode: report to a central Cirrus (shared.linked.sink)
        from shared.linked.sink import from_config

        named.append(from_config(settings.raw["linked"], base_dir=settings.base_dir,
                                 certificates=opened_store.get()))  # fmt: skip
    sinks = track(named, documents, clock)
    issuer_link: IssuerLink | None = None
    authority_factory: Callable[[], Authority] | None = None
    upstream: UpstreamCA | None = None
    rotating: RotatingIssuer[Authority] | None = None
    if settings.issuer_url:
        from shared.issuer_link import IssuerLink

        issuer_link = IssuerLink(settings.issuer_url)
    elif "ra" in settings.raw:  # registration authority: no key, an upstream CA signs (shared.ra)
        from shared.ra import UpstreamCA, ra_settings, registration_authority
        from shared.ra.wiring import renewal_check

        if settings.crl.enabled:
            raise ConfigError("config: a registration authority publishes no CRLs (the upstream's cover its"
                              " certificates): set crl.enabled to false")
        ra = ra_settings(settings.raw["ra"], base_dir=settings.base_dir, default_roots=settings.roots)
        upstream = UpstreamCA.from_settings(ra, clock=clock)
        ra_revoked = renewal_check(upstream, ra.arl, blobs=settings.blobs, intermediates=intermediates, roots=roots)

        def authority_factory() -> Authority:
            return registration_authority(
                settings, upstream, intermediates=intermediates, roots=roots, provisioners=provisioners.get(),
                store=opened_store.get(), clock=clock, sinks=sinks, policy=policy.get(), issuer_revoked=ra_revoked,
            )
    else:
        from shared.issuing_wiring import rotating_authority

        rotating = rotating_authority(settings, intermediates=intermediates, roots=roots, provisioners=provisioners,
                                      store=opened_store, documents=documents, clock=clock, sinks=sinks,
                                      policy=policy)  # fmt: skip
        authority_factory = rotating.current

    def build_revoker() -> Revoker:
        from shared.revocation import Revoker

        return Revoker(
            authority_id=settings.authority_id,
            provisioners=provisioners.get(),
            tokens=opened_store.get(),
            certificates=opened_store.get(),
            revocations=opened_store.get(),
            clock=clock,
            sinks=sinks,
            upstream=upstream,
        )

    services = Services(
        settings=settings,
        clock=clock,
        deferred_store=opened_store,
        authority_factory=authority_factory,
        deferred_revoker=Once(build_revoker),
        deferred_provisioners=provisioners,
        audiences=audiences,
        roots=roots,
        intermediates=intermediates,
        issuer_link=issuer_link,
        sinks=sinks,
        ra_upstream=upstream,
        rotating=rotating,
    )
    if not deferred:  # a wrong provisioner or policy block fails here, at start
        policy.get()
    if settings.authorities:  # further issuing authorities: their chains are checked now, keys on first use
        from shared.authorities import hosted

        hosted(services)
    return services
