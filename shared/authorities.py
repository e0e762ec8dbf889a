"""Several issuing authorities in one deployment, and which one serves a request.

The config's top-level `crt`/`key`/`authority.provisioners` stay the default
authority (`Services.issuing()`, unchanged). Each entry of `authorities`
(`shared.authority_settings`) is one more `HostedAuthority`: its own issuing
certificate and chain under the deployment's root(s), its own key, its own
provisioners, CRL and OCSP identity. A request reaches one:

- at its prefix mount `/<prefix>/...` (`shared.api.authority_routes`): only it;
- at the default mount: by the one-time token's provisioner (a provisioner name
  belongs to one authority), or for renew/rekey/revoke by mTLS, by the issuer of
  the presented certificate; anything else goes to the default authority.

Chains are checked when the services are built (no key is opened then); each
key is opened, and checked against its certificate, on first use.

The chain check is hand-written (`verify_directly_issued_by` link by link):
`cryptography`'s path builder verifies leaf certificates for a TLS use, not a CA
certificate against the roots.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from shared.authority import Authority, AuthorityStores
from shared.authority_settings import AuthoritySettings
from shared.errors import CAError, ConfigError
from shared.keys.adapter import as_private_key
from shared.policy.issuance import IssuancePolicies
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import Audiences, peek
from shared.revocation import Revoker
from shared.x509.profile import Issuer

if TYPE_CHECKING:
    from shared.intermediate_revocation import RevokedIntermediates
    from shared.rotation import RevokedCheck
    from shared.runtime import Services

HOSTED_EXTRA = "hosted_authorities"


class HostedAuthority:
    """One further issuing authority; its `Authority` (and key) is built on first use."""

    def __init__(
        self,
        *,
        settings: AuthoritySettings,
        intermediates: Sequence[x509.Certificate],
        provisioners: Provisioners,
        audiences: Audiences,
        revoker: Revoker,
        factory: Callable[[], Authority],
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.authority_id = settings.authority_id
        self.prefix = settings.prefix
        self.intermediates = list(intermediates)
        self.provisioners = provisioners
        self.audiences = audiences
        self.revoker = revoker
        self._factory = factory
        self._built: Authority | None = None
        self._lock = threading.Lock()

    @property
    def certificate(self) -> x509.Certificate:
        """The issuing CA certificate (signs the leaves, the CRL and OCSP answers)."""
        return self.intermediates[0]

    def authority(self) -> Authority:
        """The issuing pipeline, its key opened once.

        Raises:
            ConfigError: the key cannot be opened or is not the certificate's.
        """
        with self._lock:
            if self._built is None:
                self._built = self._factory()
            return self._built

    def issued(self, certificate: x509.Certificate) -> bool:
        """Whether `certificate` names this authority's issuing CA as its issuer (name and key id)."""
        if certificate.issuer != self.certificate.subject:
            return False
        try:
            aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        except x509.ExtensionNotFound:
            return True
        return aki.key_identifier is None or aki.key_identifier == _key_id(self.certificate)


@dataclass(frozen=True)
class HostedAuthorities:
    """The deployment's further authorities, and the provisioners of all (default's first)."""

    others: tuple[HostedAuthority, ...]
    listing: Provisioners  # every authority's provisioners: `/provisioners` and routing at the default mount

    def by_prefix(self, prefix: str) -> HostedAuthority | None:
        """The authority mounted at `/<prefix>/`."""
        return next((h for h in self.others if h.prefix and h.prefix == prefix), None)

    def by_id(self, authority_id: str) -> HostedAuthority | None:
        """The authority whose records carry `authority_id`."""
        return next((h for h in self.others if h.authority_id == authority_id), None)

    def by_provisioner(self, name: str) -> HostedAuthority | None:
        """The further authority a provisioner belongs to (None: the default's, or unknown)."""
        return next((h for h in self.others if h.provisioners.by_name(name) is not None), None)

    def for_token(self, ott: object) -> HostedAuthority | None:
        """The authority whose provisioner a one-time token names (None: the default).

        A token that cannot be routed goes to the default authority, which then
        refuses it exactly as a single-authority deployment does.
        """
        if not self.others or not isinstance(ott, str) or not ott:
            return None
        try:
            provisioner = self.listing.for_token(peek(ott))
        except CAError:
            return None
        return self.by_provisioner(provisioner.ref.name)

    def for_certificate(self, certificate: x509.Certificate | None) -> HostedAuthority | None:
        """The further authority that issued `certificate` (None: the default, or unknown)."""
        if certificate is None:
            return None
        return next((h for h in self.others if h.issued(certificate)), None)


def hosted(services: Services) -> HostedAuthorities:
    """The deployment's `HostedAuthorities`, built once per instance (chains checked then)."""
    built: HostedAuthorities = services.lazy(HOSTED_EXTRA, build_hosted)
    return built


def open_all(services: Services) -> None:
    """Open every further authority's key now (`cirrus up` fails at start on a wrong one).

    Raises:
        ConfigError: a key that cannot be opened or is not its certificate's.
    """
    if services.settings.authorities:
        for authority in hosted(services).others:
            authority.authority()


def build_hosted(services: Services) -> HostedAuthorities:
    """Build every `authorities` entry from the settings.

    Raises:
        ConfigError: a chain that is unreadable or does not reach a configured root.
    """
    from shared.runtime import audience_hosts, load_certificates

    settings = services.settings
    hosts = audience_hosts(settings)
    others = []
    for entry in settings.authorities:
        chain = checked_chain(entry.name, load_certificates(entry.chain), services.roots)
        audiences = Audiences(hosts, prefixes=("", f"/{entry.prefix}") if entry.prefix else ("",))
        provisioners = Provisioners(entry.provisioners, global_claims=settings.global_claims, audiences=audiences,
                                    base_dir=settings.base_dir)  # fmt: skip
        revoker = Revoker(
            authority_id=entry.authority_id, provisioners=provisioners, tokens=services.store,
            certificates=services.store, revocations=services.store, clock=services.clock, sinks=services.sinks,
        )  # fmt: skip
        others.append(HostedAuthority(
            settings=entry, intermediates=chain, provisioners=provisioners, audiences=audiences, revoker=revoker,
            factory=_factory(services, entry, chain, provisioners),
        ))  # fmt: skip
    if others:
        configs = [*settings.provisioners, *(p for e in settings.authorities for p in e.provisioners)]
        listing = Provisioners(configs, global_claims=settings.global_claims, audiences=services.audiences,
                               base_dir=settings.base_dir)  # fmt: skip
    else:
        listing = services.provisioners
    return HostedAuthorities(others=tuple(others), listing=listing)


def _factory(
    services: Services, entry: AuthoritySettings, chain: list[x509.Certificate], provisioners: Provisioners
) -> Callable[[], Authority]:
    def build() -> Authority:
        from shared.runtime import open_signer
        from shared.webhooks.identity import issuing_identity
        from shared.webhooks.wiring import provisioner_webhooks

        settings = services.settings
        signer = open_signer(entry.key, password_file=settings.password_file)
        if signer.public_key() != chain[0].public_key():
            raise ConfigError(f"config: authority {entry.name!r}: the key does not match its certificate")
        issuer = Issuer.of(chain[0], as_private_key(signer))
        return Authority(
            authority_id=entry.authority_id,
            issuer=issuer,
            intermediates=chain,
            roots=services.roots,
            provisioners=provisioners,
            stores=AuthorityStores(issuance=services.store, revocations=services.store, endpoints=services.store),
            clock=services.clock,
            backdate=settings.backdate,
            crl_url=crl_url_for(services, entry.authority_id),
            ocsp_url=entry.ocsp_url or settings.crl.ocsp_url or None,
            ca_issuers_url=entry.ca_issuers_url or None,
            sinks=services.sinks,
            policy=IssuancePolicies.build(None, provisioners),
            intermediate_revoked=lambda cert: revoked_intermediates(services).is_revoked(cert),
            webhooks=provisioner_webhooks(provisioners.webhooks, roots=services.roots, clock=services.clock,
                                          identity=lambda: issuing_identity(
                                              issuer, chain, common_name=settings.common_name,
                                              names=settings.dns_names, clock=services.clock,
                                              revoked=lambda cert: revoked_intermediates(services).is_revoked(cert))),
        )

    return build


def revoked_intermediates(services: Services) -> RevokedCheck:
    """The roots' ARLs as the further authorities check them before signing (one view per instance,
    the default authority's when it has one, so the ARL is read once per recheck)."""
    rotating = services.rotating
    if rotating is not None and rotating.revoked_view is not None:
        return rotating.revoked_view()

    def build(s: Services) -> RevokedIntermediates:
        from shared.blobs.open import open_blobs
        from shared.intermediate_revocation import RevokedIntermediates

        return RevokedIntermediates(blobs=open_blobs(s.settings.blobs), roots=s.roots)

    view: RevokedIntermediates = services.lazy("revoked_intermediates", build)
    return view


def crl_url_for(services: Services, authority_id: str) -> Callable[[int], str] | None:
    """The CDP URL per serial for one authority's certificates (None without `crl.baseURL`)."""
    crl = services.settings.crl
    if not crl.enabled or not crl.base_url:
        return None
    from shared.validation.partition import crl_url, shard_for_serial

    base, shards = crl.base_url, crl.shards

    def url(serial: int) -> str:
        return crl_url(base, authority_id, shard_for_serial(serial, shards) if shards else None)

    return url


def checked_chain(
    name: str, chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """`chain` (issuing CA first) without a trailing root, once each link and the top are checked.

    Raises:
        ConfigError: a link that is not a CA certificate signed by the next, or a top no root signed.
    """
    root_ders = {r.public_bytes(serialization.Encoding.DER) for r in roots}
    path = [c for c in chain if c.public_bytes(serialization.Encoding.DER) not in root_ders]
    if not path:
        raise ConfigError(f"config: authority {name!r}: its crt holds no intermediate certificate")
    where = f"config: authority {name!r}"
    for cert in path:
        try:
            ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            raise ConfigError(f"{where}: {cert.subject.rfc4514_string()} is not a CA certificate")
    for child, parent in itertools.pairwise(path):
        if not _signed_by(child, parent):
            raise ConfigError(f"{where}: {child.subject.rfc4514_string()} is not issued by the next certificate")
    if not any(_signed_by(path[-1], root) for root in roots):
        raise ConfigError(f"{where}: its chain does not lead to a configured root")
    return path


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_id(certificate: x509.Certificate) -> bytes:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


class AuthorityScope:
    """What one step-ca API mount serves: the default mount (choosing per request) or one prefix mount.

    A deployment without `authorities` never builds `HostedAuthorities`: every
    choice is the default authority, as before.
    """

    def __init__(self, services: Services, only: HostedAuthority | None = None) -> None:
        self._s = services
        self.only = only

    def _hosted(self) -> HostedAuthorities | None:
        return hosted(self._s) if self._s.settings.authorities else None

    @property
    def intermediates(self) -> list[x509.Certificate]:
        """`/intermediates`: the mount's authority's chain (root excluded)."""
        return self.only.intermediates if self.only is not None else self._s.active_intermediates()

    @property
    def provisioners(self) -> Provisioners:
        """`/provisioners`: the mount's authority's; every authority's at the default mount."""
        if self.only is not None:
            return self.only.provisioners
        directory = self._hosted()
        return directory.listing if directory is not None else self._s.provisioners

    @property
    def audiences(self) -> Audiences:
        """The audiences renew tokens may name at this mount."""
        return self.only.audiences if self.only is not None else self._s.audiences

    def for_token(self, ott: object) -> Authority:
        """The authority that signs for this one-time token."""
        if self.only is not None:
            return self.only.authority()
        directory = self._hosted()
        chosen = directory.for_token(ott) if directory is not None else None
        return chosen.authority() if chosen is not None else self._s.issuing()

    def for_certificate(self, certificate: x509.Certificate) -> Authority:
        """The authority that renews or rekeys `certificate` (the one that issued it)."""
        if self.only is not None:
            return self.only.authority()
        directory = self._hosted()
        chosen = directory.for_certificate(certificate) if directory is not None else None
        return chosen.authority() if chosen is not None else self._s.issuing()

    def revoker(self, ott: object, certificate: x509.Certificate | None) -> Revoker:
        """The revoker of the authority a revocation's token or client certificate belongs to."""
        if self.only is not None:
            return self.only.revoker
        directory = self._hosted()
        if directory is None:
            return self._s.revoker
        chosen = directory.for_token(ott) if isinstance(ott, str) and ott else directory.for_certificate(certificate)
        return chosen.revoker if chosen is not None else self._s.revoker


def client_ca_certificates(services: Services) -> list[x509.Certificate]:
    """What `cirrus up`'s TLS layer verifies client certificates against: the roots, and every
    authority's intermediates to build paths with (step-ca's client CAs are roots + intermediates).

    step's client library sends its leaf and one CA certificate, so a leaf two levels below the
    root reaches it only if the server knows the CA in between. OpenSSL still requires a path to
    a self-signed root: an intermediate in this list is not a trust anchor on its own.
    """
    certificates = [*services.roots, *services.intermediates]
    if services.settings.authorities:
        certificates.extend(c for h in hosted(services).others for c in h.intermediates)
    return certificates
