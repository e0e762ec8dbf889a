"""The Azure provisioner: managed-identity access tokens (reference s.2.3).

A VM asks IMDS (`/metadata/identity/oauth2/token`, header `Metadata: true`) for
an access token for `https://management.azure.com/`; the tenant signs it RS256
with the keys its OpenID discovery document (`https://login.microsoftonline.com/
<tenant>/.well-known/openid-configuration`, overridable by `cirrus.discoveryURL`)
points at. Checks, as step-ca's: issuer = the discovery issuer, `aud` = the
configured `audience`, `tid` = `tenantID`, and `xms_mirid` =
`/subscriptions/<s>/resourceGroups/<g>/providers/Microsoft.Compute/virtualMachines/<vm>`
(or a user-assigned identity), filtered by `resourceGroups`, `subscriptionIDs`,
`objectIDs` (`oid`). Tokens are routed here by `tid` (their `aud` is Azure's,
not the CA's). Trust on first use keys on SHA-256(xms_mirid); with
`disableTrustOnFirstUse` a token may be reused (Azure caches them for a day).
Discovery is fetched on first use, not at start, so a cold start does not
depend on Microsoft's servers; an outage is a 503.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from shared.claims import resolve_claims
from shared.errors import ConfigError, Unauthorized, Unavailable
from shared.model import ProvisionerRef
from shared.provisioners.base import ConfiguredProvisioner, ReplayClaim, RevokeAuthorization, SignAuthorization
from shared.provisioners.iid import TOFU_LIFETIME, CSRNames, cirrus_options, string_list
from shared.provisioners.jwks import Fetch, RemoteKeySet, fetch_json
from shared.provisioners.ssh_sign import SSHIdentity, iid_ssh_authorization
from shared.provisioners.tokens import PeekedToken, check_times
from shared.ssh.options import SSHOptions, SSHSignAuthorization

AZURE_OIDC_BASE = "https://login.microsoftonline.com"
DEFAULT_AUDIENCE = "https://management.azure.com/"
MAX_AZURE_TOKEN_LIFETIME = dt.timedelta(hours=25)
_PROVIDERS = {("microsoft.compute", "virtualmachines"), ("microsoft.managedidentity", "userassignedidentities")}


def parse_mirid(mirid: object) -> tuple[str, str, str] | None:
    """(subscription, resource group, name) from an `xms_mirid`, or None when it is not a VM/identity id."""
    if not isinstance(mirid, str) or len(mirid) > 1024:
        return None
    parts = mirid.split("/")
    if len(parts) != 9 or parts[0] != "" or not all(parts[1:]):
        return None
    if parts[1].lower() != "subscriptions" or parts[3].lower() != "resourcegroups" or parts[5].lower() != "providers":
        return None
    if (parts[6].lower(), parts[7].lower()) not in _PROVIDERS:
        return None
    return parts[2], parts[4], parts[8]


class AzureProvisioner(ConfiguredProvisioner):
    """A step-ca `Azure` provisioner."""

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        global_claims: Mapping[str, Any],
        fetch: Fetch | None = None,
    ) -> None:
        name, tenant = config.get("name"), config.get("tenantID")
        if not isinstance(name, str) or not name:
            raise ConfigError("Azure provisioner needs a name")
        if not isinstance(tenant, str) or not tenant:
            raise ConfigError(f"provisioner {name!r}: tenantID cannot be empty")
        audience = config.get("audience") or DEFAULT_AUDIENCE
        if not isinstance(audience, str):
            raise ConfigError(f"provisioner {name!r}: audience must be a string")
        self._config = dict(config)
        self._tenant = tenant
        self._audience = audience
        self._groups = frozenset(string_list(config, "resourceGroups", name))
        self._subscriptions = frozenset(string_list(config, "subscriptionIDs", name))
        self._object_ids = frozenset(string_list(config, "objectIDs", name))
        self._disable_custom_sans = bool(config.get("disableCustomSANs", False))
        self._tofu = not bool(config.get("disableTrustOnFirstUse", False))
        self._ref = ProvisionerRef(id=f"azure/{name}", name=name, type="Azure")
        self._claims = resolve_claims(config.get("claims"), global_claims)
        url = cirrus_options(config, name).get("discoveryURL") or (
            f"{AZURE_OIDC_BASE}/{tenant}/.well-known/openid-configuration"
        )
        if not isinstance(url, str):
            raise ConfigError(f"provisioner {name!r}: cirrus.discoveryURL must be a URL")
        self._discovery_url = url
        self._fetch = fetch
        self._lock = threading.Lock()
        self._issuer: str | None = None
        self._keys: RemoteKeySet | None = None

    @property
    def tenant_id(self) -> str:
        """The `tid` that routes tokens here."""
        return self._tenant

    def _discovered(self) -> tuple[str, RemoteKeySet]:
        with self._lock:
            if self._issuer is None or self._keys is None:
                doc, _ = fetch_json(self._discovery_url, self._fetch)
                issuer, jwks_uri = doc.get("issuer"), doc.get("jwks_uri")
                if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or not jwks_uri:
                    raise Unavailable("the tenant's OpenID discovery document is incomplete")
                self._issuer = issuer.replace("{tenantid}", self._tenant)
                self._keys = RemoteKeySet(jwks_uri, fetch=self._fetch)
            return self._issuer, self._keys

    def authorize_sign(self, peeked: PeekedToken, now: dt.datetime) -> SignAuthorization:
        """Verify a managed-identity token; the names come from the CSR (CN: the VM name when forced).

        Raises:
            Unauthorized: any token check fails (401).
            Unavailable: discovery or keys cannot be fetched (503).
        """
        issuer, keys = self._discovered()
        for key in keys.keys_for(peeked.header.get("kid")):
            try:
                peeked.verify_signature(key, ["RS256"])
                break
            except Unauthorized:
                continue
        else:
            raise Unauthorized("invalid azure token: signature does not verify")
        claims = dict(peeked.claims)
        expires = check_times(claims, now, max_lifetime=MAX_AZURE_TOKEN_LIFETIME)
        if claims.get("iss") != issuer:
            raise Unauthorized("invalid azure token: invalid issuer")
        if self._audience not in peeked.audiences:
            raise Unauthorized("invalid azure token: invalid audience")
        if claims.get("tid") != self._tenant:
            raise Unauthorized("azure token validation failed - invalid tenant id claim (tid)")
        parsed = parse_mirid(claims.get("xms_mirid"))
        if parsed is None:
            raise Unauthorized("invalid azure token: cannot parse the xms_mirid claim")
        subscription, group, vm = parsed
        if self._groups and group not in self._groups:
            raise Unauthorized("azure token validation failed - invalid resource group")
        if self._subscriptions and subscription not in self._subscriptions:
            raise Unauthorized("azure token validation failed - invalid subscription id")
        if self._object_ids and claims.get("oid") not in self._object_ids:
            raise Unauthorized("azure token validation failed - invalid identity object id")
        namespace = f"ott:{self._ref.id}"
        if self._tofu:
            key = hashlib.sha256(str(claims["xms_mirid"]).encode()).hexdigest()
            replay = ReplayClaim(namespace=namespace, key=key, expires_at=now + TOFU_LIFETIME)
        else:  # token reuse allowed: a claim that can never collide
            replay = ReplayClaim(namespace=namespace, key=secrets.token_hex(32), expires_at=expires)
        return SignAuthorization(
            provisioner=self._ref,
            claims=self._claims,
            subject=vm,
            sans=(),
            replay=replay,
            token_claims=claims,
            authorization_principal=str(claims.get("oid") or ""),  # step-ca's webhook `authorizationPrincipal`
            credential_id=self._tenant,
            renewal_enabled=not self._claims.disable_renewal,
            names_from_csr=CSRNames(common_names=(vm,), forced=(vm,) if self._disable_custom_sans else None),
            identity={"instanceID": vm, "account": subscription},
        )

    def authorize_ssh_sign(self, peeked: PeekedToken, now: dt.datetime, request: SSHOptions) -> SSHSignAuthorization:
        """Verify a managed-identity token for `/ssh/sign`: a host certificate named for the VM.

        Raises:
            Unauthorized, Unavailable: as `authorize_sign`; Forbidden, BadRequest: the request.
        """
        auth = self.authorize_sign(peeked, now)
        return iid_ssh_authorization(
            SSHIdentity(self._ref, self._claims, auth.replay, auth.identity),
            key_id=auth.subject,
            principals=(auth.subject,),
            disable_custom_sans=self._disable_custom_sans,
            request=request,
        )

    def authorize_revoke(self, peeked: PeekedToken, now: dt.datetime) -> RevokeAuthorization:
        """Azure tokens cannot revoke (step-ca: not implemented for this type).

        Raises:
            Unauthorized: always.
        """
        raise Unauthorized("provisioner.AuthorizeRevoke not implemented")
