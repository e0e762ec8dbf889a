"""The RA's `Authority` (upstream's certificates, no key) and its own TLS certificate for `cirrus up`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from shared.authority import Authority, AuthorityStores
from shared.clock import Clock
from shared.errors import ConfigError, Unavailable
from shared.keys.adapter import as_private_key
from shared.keys.base import PublicKey
from shared.ra.upstream import UpstreamCA
from shared.webhooks.wiring import provisioner_webhooks
from shared.x509.names import split_sans
from shared.x509.profile import Issuer

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.events.base import EventSink
    from shared.policy.issuance import IssuancePolicies
    from shared.provisioners.registry import Provisioners
    from shared.store.base import Store
    from shared.webhooks.identity import ClientIdentity


class _KeylessSigner:
    """The upstream intermediate's public key, with no private half: an RA never signs."""

    def __init__(self, public_key: PublicKey) -> None:
        self._public = public_key

    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        raise Unavailable("this registration authority holds no signing key")


def keyless_issuer(intermediate: x509.Certificate) -> Issuer:
    """An `Issuer` for the upstream's intermediate (mTLS and chain answers need it; signing refuses)."""
    public = intermediate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError("the upstream intermediate's key type is not supported")
    return Issuer.of(intermediate, as_private_key(_KeylessSigner(public)))


def registration_authority(
    settings: Settings,
    upstream: UpstreamCA,
    *,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    provisioners: Provisioners,
    store: Store,
    clock: Clock,
    sinks: Sequence[EventSink],
    policy: IssuancePolicies,
    issuer_revoked: Callable[[x509.Certificate], bool] | None = None,
) -> Authority:
    """The RA's `Authority`: this instance's provisioners and store, upstream's certificates, no key.

    `crt` names the upstream intermediate (mTLS renewals and `/intermediates` need it);
    CRL/OCSP/AIA URLs are upstream's business, so none are put in (the leaf is upstream's).
    `issuer_revoked`: the root ARL check renewals pass first (`shared.ra.arl`).
    """
    return Authority(
        authority_id=settings.authority_id,
        issuer=keyless_issuer(intermediates[0]),
        intermediates=intermediates,
        roots=roots,
        provisioners=provisioners,
        stores=AuthorityStores(issuance=store, revocations=store, endpoints=store, inventories=store),
        clock=clock,
        backdate=settings.backdate,
        sinks=sinks,
        webhooks=provisioner_webhooks(provisioners.webhooks, roots=roots, clock=clock,
                                      identity=lambda: upstream_identity(upstream, settings.dns_names, clock)),
        policy=policy,
        upstream=upstream,
        issuer_revoked=issuer_revoked,
    )


def upstream_server_certificate(
    upstream: UpstreamCA, key: ec.EllipticCurvePrivateKey, names: Sequence[str]
) -> x509.Certificate:
    """`cirrus up` at an RA: its TLS certificate for `dnsNames` comes from the upstream too.

    Raises:
        CAError: as `UpstreamCA.issue` (the server does not start without upstream).
    """
    return _upstream_certificate(upstream, key, names)[0]


def upstream_identity(upstream: UpstreamCA, names: Sequence[str], clock: Clock) -> ClientIdentity:
    """The RA's webhook client certificate (`shared.webhooks.identity`), issued by the upstream for
    `dnsNames` with upstream's default lifetime and key usages, as a step-ca RA's own TLS
    certificate is issued by its upstream CAS."""
    from shared.webhooks.identity import ClientIdentity

    return ClientIdentity(issue=lambda key: _upstream_certificate(upstream, key, names), clock=clock)


def _upstream_certificate(upstream: UpstreamCA, key: ec.EllipticCurvePrivateKey,
                          names: Sequence[str]) -> tuple[x509.Certificate, list[x509.Certificate]]:  # fmt: skip
    sans = split_sans([n.strip("[]") for n in names])
    cn = next((d for d in sans.dns if len(d) <= 64), "")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName(sans.general_names()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return upstream.issue(csr, common_name=cn, sans=sans, window=None)  # upstream's default lifetime


def renewal_check(
    upstream: UpstreamCA, source: str, *, blobs: str, intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
) -> Callable[[x509.Certificate], bool]:
    """The RA's renewal check against the root's ARL (`shared.ra.arl`), read from the upstream's
    `/crl/` or from this deployment's blob store (`blobs`, a URL); opened on the first renewal."""
    opened: list[Callable[[x509.Certificate], bool]] = []

    def check(certificate: x509.Certificate) -> bool:
        if not opened:
            from shared.intermediate_revocation import ARLSource, RevokedIntermediates
            from shared.ra.arl import UpstreamARL, issuer_revoked

            def revoked() -> RevokedIntermediates:
                source_of: ARLSource
                if source == "blobs":
                    from shared.blobs.open import open_blobs

                    source_of = open_blobs(blobs)
                else:
                    source_of = UpstreamARL(upstream.url, tls=upstream.tls, timeout=upstream.timeout)
                return RevokedIntermediates(blobs=source_of, roots=roots)

            opened.append(issuer_revoked(intermediates, revoked))
        return opened[0](certificate)

    return check
