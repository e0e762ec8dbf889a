"""The configured provisioners and token routing.

Routing follows step-ca's `LoadByToken`: a JWK token is routed by
`"<iss>:<header kid>"`; provisioner types whose modules have not landed yet
are still listed (so clients see them) but cannot authorize tokens.

Each provisioner type's module (and the template engine) is imported when a
configured provisioner needs it: every Cloud Function builds this registry, and
one that verifies no tokens (the OCSP responder) or only JWK ones should not
load the OIDC, cloud-identity and SSH code at its cold start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from shared.claims import resolve_claims
from shared.decimal_text import parse_hex
from shared.errors import BadRequest, ConfigError, Unauthorized
from shared.inventory.gate import load_inventory_options
from shared.model import ProvisionerRef
from shared.provisioners.base import ConfiguredProvisioner

if TYPE_CHECKING:
    from shared.provisioners.audience import Audiences
    from shared.provisioners.aws import AWSProvisioner
    from shared.provisioners.azure import AzureProvisioner
    from shared.provisioners.cloud import CloudProvisioner
    from shared.provisioners.gcp import GCPProvisioner
    from shared.provisioners.jwk import JWKProvisioner
    from shared.provisioners.oidc import OIDCProvisioner
    from shared.provisioners.tokens import PeekedToken
    from shared.provisioners.x5c import X5CProvisioner
    from shared.templates.provisioner import ProvisionerTemplate

# Types whose renewal is off unless switched on (endpoint grouping by subject).
RENEWAL_DISABLED_BY_DEFAULT = {"ACME", "OIDC"}


class ListedProvisioner(ConfiguredProvisioner):
    """A provisioner known from config whose token flow is not served here (e.g. ACME)."""

    def __init__(self, *, config: Mapping[str, Any], global_claims: Mapping[str, Any]) -> None:
        name = config.get("name")
        ptype = config.get("type")
        if not isinstance(name, str) or not name or not isinstance(ptype, str):
            raise ConfigError("every provisioner needs a 'type' and a 'name'")
        self._config = dict(config)
        canonical = {
            t.lower(): t
            for t in ("JWK", "OIDC", "GCP", "AWS", "Azure", "ACME", "X5C", "K8sSA", "SSHPOP", "SCEP", "Nebula")
        }
        self._type = canonical.get(ptype.lower(), ptype)
        self._ref = ProvisionerRef(id=f"{self._type.lower()}/{name}", name=name, type=self._type)
        self._claims = resolve_claims(
            config.get("claims"),
            global_claims,
            renewal_default_disabled=self._type in RENEWAL_DISABLED_BY_DEFAULT,
        )

    @property
    def config(self) -> Mapping[str, Any]:
        """The raw config block."""
        return self._config



if TYPE_CHECKING:
    AnyProvisioner = JWKProvisioner | CloudProvisioner | ListedProvisioner
    TokenProvisioner = JWKProvisioner | CloudProvisioner


def _load_templates(configs: list[Mapping[str, Any]], kind: str, base_dir: Path | None
                    ) -> dict[str, ProvisionerTemplate]:  # fmt: skip
    """`shared.templates.provisioner.load_templates`, importing the engine only when a provisioner has options."""
    if all(config.get("options") is None for config in configs):
        return {}
    from shared.templates.provisioner import load_templates

    return load_templates(configs, kind, base_dir)


class Provisioners:
    """All provisioners of an authority, in config order."""

    def __init__(
        self,
        configs: Iterable[Mapping[str, Any]],
        *,
        global_claims: Mapping[str, Any],
        audiences: Audiences,
        base_dir: Path | None = None,
    ) -> None:
        configs = list(configs)
        from shared.webhooks.config import load_webhooks  # light: the template engine loads only for hooks

        self.webhooks = load_webhooks(configs)  # `options.webhooks`, checked now like the templates

        # Certificate templates are parsed now, so a broken one stops the CA from starting.
        self.x509_templates = _load_templates(configs, "x509", base_dir)
        self.ssh_templates = _load_templates(configs, "ssh", base_dir)
        self.inventory_options = load_inventory_options(configs)  # `options.inventory`, checked now too
        self._all: list[AnyProvisioner] = []
        self._jwk_by_id: dict[str, JWKProvisioner] = {}
        self._by_name: dict[str, AnyProvisioner] = {}
        self._by_ref_id: dict[str, AnyProvisioner] = {}
        self._by_token_id: dict[str, CloudProvisioner] = {}
        self._by_tenant: dict[str, AzureProvisioner] = {}
        self._by_client_id: dict[str, OIDCProvisioner] = {}
        for config in configs:
            ptype = str(config.get("type", "")).upper()
            p: AnyProvisioner
            cloud = _cloud_provisioner(config, global_claims=global_claims, audiences=audiences)
            if cloud is not None and ptype == "AZURE":  # the classes are not imported here: the type says
                azure = cast("AzureProvisioner", cloud)
                self._by_tenant[azure.tenant_id] = azure
                p = cloud
            elif cloud is not None and ptype == "OIDC":
                oidc = cast("OIDCProvisioner", cloud)
                self._by_client_id[oidc.client_id] = oidc
                p = cloud
            elif cloud is not None:
                self._by_token_id[cast("GCPProvisioner | AWSProvisioner | X5CProvisioner", cloud).token_id] = cloud
                p = cloud
            elif ptype == "JWK":
                from shared.provisioners.jwk import JWKProvisioner

                jp = JWKProvisioner(config=config, global_claims=global_claims, audiences=audiences)
                self._jwk_by_id[jp.ref.id] = jp
                p = jp
            else:
                p = ListedProvisioner(config=config, global_claims=global_claims)
            self._all.append(p)
            self._by_name[p.ref.name] = p
            self._by_ref_id[p.ref.id] = p

    def __iter__(self) -> Any:
        return iter(self._all)

    def by_name(self, name: str) -> AnyProvisioner | None:
        """Find a provisioner by name."""
        return self._by_name.get(name)

    def by_id(self, ref_id: str) -> AnyProvisioner | None:
        """Find a provisioner by its id (as stored in certificate records)."""
        return self._by_ref_id.get(ref_id)

    def for_token(self, peeked: PeekedToken) -> TokenProvisioner:
        """Route a one-time token to the provisioner that must verify it.

        As step-ca's `LoadByToken`: an `aud` with a fragment (`...#gcp/name`) names the
        provisioner by its token id; otherwise `"<iss>:<header kid>"` names a JWK one.

        Raises:
            Unauthorized: no provisioner matches.
            BadRequest: the provisioner does not use one-time tokens (ACME).
        """
        for aud in peeked.audiences:
            _, sep, fragment = aud.partition("#")
            if sep:
                by_fragment = self._by_token_id.get(fragment)
                if by_fragment is not None:
                    return by_fragment
                break
        iss = peeked.claims.get("iss")
        kid = peeked.header.get("kid")
        if isinstance(iss, str) and isinstance(kid, str):
            found = self._jwk_by_id.get(f"{iss}:{kid}")
            if found is not None:
                return found
            other = self._by_name.get(iss)
            if isinstance(other, ListedProvisioner) and other.ref.type in ("ACME", "SCEP"):
                raise BadRequest("token flow is not supported")
        # Tokens whose `aud` is not the CA's (step-ca's order): OIDC by `azp`, Azure AD OIDC by
        # `aud[0]`, Azure by `tid`, then OIDC by `aud[0]`.
        auds = peeked.audiences
        azp, tid = peeked.claims.get("azp"), peeked.claims.get("tid")
        if isinstance(azp, str) and azp in self._by_client_id:
            return self._by_client_id[azp]
        if isinstance(tid, str):
            if "email" in peeked.claims and auds and auds[0] in self._by_client_id:
                return self._by_client_id[auds[0]]
            if tid in self._by_tenant:
                return self._by_tenant[tid]
        if auds and auds[0] in self._by_client_id:
            return self._by_client_id[auds[0]]
        raise Unauthorized("provisioner not found or invalid audience")

    def jwk_by_kid(self, kid: str) -> JWKProvisioner | None:
        """The JWK provisioner whose key has this `kid` (for the encrypted-key route)."""
        for p in self._jwk_by_id.values():
            if p.kid == kid:
                return p
        return None

    def page(self, cursor: str, limit: int) -> tuple[list[dict[str, Any]], str]:
        """One page of `GET /provisioners`: items after `cursor`, and the next cursor.

        The cursor is opaque: the index of the next item and a hash of the
        previous item's id, so a config change invalidates old cursors
        (400) rather than silently skipping.
        """
        start = 0
        if cursor:
            try:
                index_hex, digest = cursor[:8], cursor[8:]
                start = parse_hex(index_hex, max_digits=8)
            except ValueError as exc:
                raise BadRequest("invalid cursor") from exc
            if start <= 0 or start > len(self._all) or digest != _cursor_digest(self._all[start - 1]):
                raise BadRequest("invalid cursor")
        items = self._all[start : start + limit]
        end = start + len(items)
        next_cursor = f"{end:08x}{_cursor_digest(self._all[end - 1])}" if end < len(self._all) and items else ""
        if self.webhooks:  # hooks' secrets sit in their blocks; the listing shows them as step-ca does
            from shared.webhooks.config import without_secrets

            return [without_secrets(p.public_json()) for p in items], next_cursor
        return [p.public_json() for p in items], next_cursor


# The types `shared.provisioners.cloud` builds (the others are JWK or listed only).
_CLOUD_TYPES = frozenset({"GCP", "AWS", "AZURE", "OIDC", "X5C"})


def _cloud_provisioner(config: Mapping[str, Any], *, global_claims: Mapping[str, Any], audiences: Audiences
                       ) -> CloudProvisioner | None:  # fmt: skip
    """`build_cloud_provisioner`, imported only for a type it builds."""
    if str(config.get("type", "")).upper() not in _CLOUD_TYPES:
        return None
    from shared.provisioners.cloud import build_cloud_provisioner

    return build_cloud_provisioner(config, global_claims=global_claims, audiences=audiences)


def _cursor_digest(p: AnyProvisioner) -> str:
    return hashlib.sha1(p.ref.id.encode(), usedforsecurity=False).hexdigest()[:16]
