"""How the composition root wires the issuing authority of each intermediate generation.

Apart from shared.runtime (which calls it only for an instance that signs in-process) so that
the root stays small; everything here is imported when the first signing authority is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509

from shared.clock import Clock
from shared.config import Settings
from shared.errors import ConfigError
from shared.events.base import EventSink
from shared.once import Once
from shared.store.base import Store

if TYPE_CHECKING:
    from shared.authority import Authority
    from shared.intermediate_revocation import RevokedIntermediates
    from shared.policy.issuance import IssuancePolicies
    from shared.provisioners.registry import Provisioners
    from shared.rotation import RotatingIssuer
    from shared.rotation_record import Documents, Generation
    from shared.webhooks.identity import ClientIdentity


def rotating_authority(
    settings: Settings, *, intermediates: list[x509.Certificate], roots: list[x509.Certificate],
    provisioners: Once[Provisioners], store: Once[Store], documents: Documents, clock: Clock,
    sinks: list[EventSink], policy: Once[IssuancePolicies],
) -> RotatingIssuer[Authority]:  # fmt: skip
    """One `Authority` per intermediate generation, the active one chosen per request (shared.rotation).

    `store` is opened when a generation's `Authority` is built; `documents` (the store's, or a view
    that opens it on first use) is where the rotation record is read, so wiring this opens nothing.
    """
    from shared.rotation import (
        IntermediateRotation,
        RotatingIssuer,
        chain_verifier,
        intermediate_revoked,
        issuer_revoked,
        opened_once,
    )
    from shared.rotation_record import Generation, config_generations, rotation_recheck
    from shared.runtime import open_signer

    rotation = IntermediateRotation(
        authority_id=settings.authority_id,
        recheck=rotation_recheck(settings.raw.get("rotation")),
        base=Generation(chain=tuple(intermediates), key_uri=settings.key, crl_id=settings.authority_id, base=True),
        documents=documents,
        clock_now=clock.now,
        configured=config_generations(settings.raw.get("intermediates"), base_dir=settings.base_dir,
                                      authority_id=settings.authority_id),
        verify=chain_verifier(roots),
    )

    def revoked() -> RevokedIntermediates:
        from shared.blobs.open import open_blobs
        from shared.intermediate_revocation import RevokedIntermediates  # on the first renewal, not at start

        return RevokedIntermediates(blobs=open_blobs(settings.blobs), roots=roots)

    arl_view = opened_once(revoked)
    revoked_check = issuer_revoked(rotation, arl_view)
    signing_check = intermediate_revoked(arl_view)

    def build(gen: Generation) -> Authority:
        from shared.authority import Authority, AuthorityStores  # the issuing pipeline: signers only
        from shared.keys.adapter import as_private_key
        from shared.webhooks.wiring import provisioner_webhooks
        from shared.x509.profile import Issuer

        opened = store.get()
        signer = open_signer(gen.key_uri, password_file=settings.password_file)
        if signer.public_key().public_numbers() != gen.certificate.public_key().public_numbers():  # type: ignore[union-attr]
            raise ConfigError("the key does not match the intermediate certificate")
        issuer = Issuer.of(gen.certificate, as_private_key(signer))

        def webhook_identity() -> ClientIdentity:
            """This generation's webhook client certificate (`shared.webhooks.identity`)."""
            from shared.webhooks.identity import issuing_identity

            return issuing_identity(issuer, gen.chain, common_name=settings.common_name, names=settings.dns_names,
                                    clock=clock, revoked=signing_check)  # fmt: skip

        return Authority(
            authority_id=settings.authority_id,
            issuer=issuer,
            intermediates=list(gen.chain),
            roots=roots,
            provisioners=provisioners.get(),
            stores=AuthorityStores(issuance=opened, revocations=opened, endpoints=opened, inventories=opened),
            clock=clock,
            backdate=settings.backdate,
            crl_url=crl_url_function(settings, gen.crl_id),
            ocsp_url=settings.crl.ocsp_url or None,
            ca_issuers_url=settings.crl.ca_issuers_url or None,
            sinks=sinks,
            webhooks=provisioner_webhooks(provisioners.get().webhooks, roots=roots, clock=clock,
                                          identity=webhook_identity),
            policy=policy.get(),
            issuer_revoked=revoked_check,
            intermediate_revoked=signing_check,
        )

    rotating = RotatingIssuer(rotation, build)
    rotating.revoked_view = arl_view
    return rotating


def crl_url_function(settings: Settings, crl_id: str | None = None) -> Any:
    """CDP URL per serial when a public CRL base URL is configured (`crl_id`: a generation's CRL)."""
    if not settings.crl.enabled or not settings.crl.base_url:
        return None
    from shared.validation.partition import crl_url, shard_for_serial

    base, shards, authority_id = settings.crl.base_url, settings.crl.shards, crl_id or settings.authority_id

    def url(serial: int) -> str:
        shard = shard_for_serial(serial, shards) if shards else None
        return crl_url(base, authority_id, shard)

    return url
