"""The composition root: settings in, wired services out (once per process).

Nothing else constructs backends. Every heavy import (a store backend, a KMS
client) happens here, lazily, for what the settings name; a Cloud Function
instance builds its `Services` on first use and keeps them for its lifetime.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509

from shared.clock import Clock, SystemClock
from shared.config import Settings
from shared.errors import ConfigError
from shared.events.base import EventSink
from shared.keys.adapter import as_private_key
from shared.keys.base import Signer
from shared.policy.issuance import IssuancePolicies
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import Audiences
from shared.revocation import Revoker
from shared.store.base import Store
from shared.store.open import open_store
from shared.x509.profile import Issuer

if TYPE_CHECKING:
    from shared.authority import Authority
    from shared.issuer_link import IssuerLink
    from shared.ra import UpstreamCA


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
    store: Store
    authority_factory: Callable[[], Authority] | None
    revoker: Revoker
    provisioners: Provisioners
    audiences: Audiences
    roots: list[x509.Certificate]
    intermediates: list[x509.Certificate]
    issuer_link: IssuerLink | None = None
    sinks: list[EventSink] = field(default_factory=list)
    ra_upstream: UpstreamCA | None = None  # registration authority mode (shared.ra)
    extras: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

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
        built: Authority = self.lazy("authority", lambda _s: self.authority_factory())
        return built

    @authority.setter
    def authority(self, value: Authority) -> None:
        """Replace the issuing authority (tests wire one with a different key backend)."""
        with self._lock:
            self.extras["authority"] = value
        if self.authority_factory is None:
            self.authority_factory = lambda: value

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
        authority_ids = [self.settings.authority_id, *linked_authority_ids(self.store)]
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
        ) + len(
            run_authority_alerts(
                [*self.intermediates, *self.roots],
                authority_id=self.settings.authority_id,
                ledger=self.store,
                events=self.store,
                now=self.clock.now(),
                sinks=self.sinks,
            )
        )

    def redeliver_events(self) -> int:
        """Retry events a sink failed to take (due ones); return how many were delivered now."""
        from shared.events.delivery import TrackedSink, redeliver

        tracked = [s for s in self.sinks if isinstance(s, TrackedSink)]
        return redeliver(tracked, now=self.clock.now()).delivered

    def close(self) -> None:
        """Release backends."""
        self.store.close()


def build_services(settings: Settings, *, clock: Clock | None = None, store: Store | None = None) -> Services:
    """Wire every service from settings.

    With `issuerURL` set (the serverless registration-authority shape) no signing
    key is opened: requests that need a signature go to the private issuer function.

    Raises:
        ConfigError: anything in the settings that cannot be built.
    """
    clock = clock or SystemClock()
    roots = [c for path in settings.roots for c in load_certificates(path)]
    intermediates = load_certificates(settings.intermediate)
    store = store or open_store(settings.store, clock=clock)
    audiences = Audiences(audience_hosts(settings))
    provisioners = Provisioners(settings.provisioners, global_claims=settings.global_claims, audiences=audiences,
                                base_dir=settings.base_dir)
    policy = IssuancePolicies.build((settings.raw.get("authority") or {}).get("policy"), provisioners)
    from shared.events.delivery import track
    from shared.events.log import open_sinks

    opened: list[EventSink] = open_sinks(settings.event_sinks)  # type: ignore[assignment]
    named: list[tuple[str, EventSink]] = list(zip(settings.event_sinks, opened, strict=True))
    if settings.raw.get("linked") is not None:  # linked mode: report to a central Cirrus (shared.linked.sink)
        from shared.linked.sink import from_config

        named.append(from_config(settings.raw["linked"], base_dir=settings.base_dir, certificates=store))
    sinks = track(named, store, clock)
    issuer_link: IssuerLink | None = None
    authority_factory: Callable[[], Authority] | None = None
    upstream: UpstreamCA | None = None
    if settings.issuer_url:
        from shared.issuer_link import IssuerLink

        issuer_link = IssuerLink(settings.issuer_url)
    elif "ra" in settings.raw:  # registration authority: no key, an upstream CA signs (shared.ra)
        from shared.ra import UpstreamCA, ra_settings, registration_authority

        if settings.crl.enabled:
            raise ConfigError("config: a registration authority publishes no CRLs (the upstream's cover its"
                              " certificates): set crl.enabled to false")
        upstream = UpstreamCA.from_settings(
            ra_settings(settings.raw["ra"], base_dir=settings.base_dir, default_roots=settings.roots), clock=clock
        )

        def authority_factory() -> Authority:
            return registration_authority(
                settings, upstream, intermediates=intermediates, roots=roots, provisioners=provisioners,
                store=store, clock=clock, sinks=sinks, policy=policy,
            )
    else:

        def authority_factory() -> Authority:
            from shared.authority import Authority, AuthorityStores  # the issuing pipeline: signers only

            signer = open_signer(settings.key, password_file=settings.password_file)
            if signer.public_key().public_numbers() != intermediates[0].public_key().public_numbers():  # type: ignore[union-attr]
                raise ConfigError("the key does not match the intermediate certificate")
            return Authority(
                authority_id=settings.authority_id,
                issuer=Issuer.of(intermediates[0], as_private_key(signer)),
                intermediates=intermediates,
                roots=roots,
                provisioners=provisioners,
                stores=AuthorityStores(issuance=store, revocations=store, endpoints=store),
                clock=clock,
                backdate=settings.backdate,
                crl_url=_crl_url_function(settings),
                ocsp_url=settings.crl.ocsp_url or None,
                ca_issuers_url=settings.crl.ca_issuers_url or None,
                sinks=sinks,
                policy=policy,
            )

    revoker = Revoker(
        authority_id=settings.authority_id,
        provisioners=provisioners,
        tokens=store,
        certificates=store,
        revocations=store,
        clock=clock,
        sinks=sinks,
        upstream=upstream,
    )
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        authority_factory=authority_factory,
        revoker=revoker,
        provisioners=provisioners,
        audiences=audiences,
        roots=roots,
        intermediates=intermediates,
        issuer_link=issuer_link,
        sinks=sinks,
        ra_upstream=upstream,
    )


def _crl_url_function(settings: Settings) -> Any:
    """CDP URL per serial when a public CRL base URL is configured."""
    if not settings.crl.enabled or not settings.crl.base_url:
        return None
    from shared.validation.partition import crl_url, shard_for_serial

    base, shards, authority_id = settings.crl.base_url, settings.crl.shards, settings.authority_id

    def url(serial: int) -> str:
        shard = shard_for_serial(serial, shards) if shards else None
        return crl_url(base, authority_id, shard)

    return url
