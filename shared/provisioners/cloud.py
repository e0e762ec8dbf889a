"""Build the provisioners beyond JWK (cloud instance identity, OIDC, X5C) from their blocks, one place per type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # each type's module is imported only when a provisioner of that type is configured
    from shared.provisioners.aws import AWSProvisioner
    from shared.provisioners.azure import AzureProvisioner
    from shared.provisioners.gcp import GCPProvisioner
    from shared.provisioners.oidc import OIDCProvisioner
    from shared.provisioners.tokens import Audiences
    from shared.provisioners.x5c import X5CProvisioner

    CloudProvisioner = GCPProvisioner | AWSProvisioner | AzureProvisioner | OIDCProvisioner | X5CProvisioner


def build_cloud_provisioner(
    config: Mapping[str, Any], *, global_claims: Mapping[str, Any], audiences: Audiences
) -> CloudProvisioner | None:
    """The provisioner for a GCP/AWS/Azure block; None for other types.

    Raises:
        ConfigError: an invalid block.
    """
    ptype = str(config.get("type", "")).upper()
    if ptype == "GCP":
        from shared.provisioners.gcp import GCPProvisioner

        return GCPProvisioner(config=config, global_claims=global_claims, audiences=audiences)
    if ptype == "AWS":
        from shared.provisioners.aws import AWSProvisioner

        return AWSProvisioner(config=config, global_claims=global_claims, audiences=audiences)
    if ptype == "AZURE":
        from shared.provisioners.azure import AzureProvisioner

        return AzureProvisioner(config=config, global_claims=global_claims)
    if ptype == "OIDC":
        from shared.provisioners.oidc import OIDCProvisioner

        return OIDCProvisioner(config=config, global_claims=global_claims)
    if ptype == "X5C":
        from shared.provisioners.x5c import X5CProvisioner

        return X5CProvisioner(config=config, global_claims=global_claims, audiences=audiences)
    return None
