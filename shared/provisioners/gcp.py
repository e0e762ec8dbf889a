"""The GCP provisioner: Google-signed instance identity tokens (reference s.2.3).

A VM asks its metadata server for an identity token with the audience
`https://<ca>/1.0/sign#gcp/<name>` (`format=full`, so the token carries the
`google.compute_engine` block). Google signs it RS256 with the keys published at
`https://www.googleapis.com/oauth2/v3/certs` (overridable by `cirrus.jwksURL` so
tests and air-gapped sites point it at their own). Checks, as step-ca's: issuer
`https://accounts.google.com`, time claims with a minute's leeway, the audience
with its `#gcp/<name>` fragment, `sub`/`email` in `serviceAccounts`, `project_id`
in `projectIDs`, the instance younger than `instanceAge`, and the instance fields
present. Trust on first use and the forced SANs are in `iid.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shared.claims import resolve_claims
from shared.errors import ConfigError, Unauthorized
from shared.model import ProvisionerRef
from shared.provisioners.base import RevokeAuthorization, RoutedProvisioner, SignAuthorization
from shared.provisioners.iid import (
    CSRNames,
    audience_matches,
    cirrus_options,
    instance_age,
    replay_claim,
    string_list,
)
from shared.provisioners.jwks import RemoteKeySet
from shared.provisioners.ssh_sign import SSHIdentity, iid_ssh_authorization
from shared.provisioners.tokens import MAX_TOKEN_LIFETIME, Audiences, PeekedToken, check_times
from shared.ssh.options import SSHOptions, SSHSignAuthorization

GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
ALGORITHMS = ["RS256"]


def _text(block: Mapping[str, Any], key: str) -> str:
    value = block.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else ""


class GCPProvisioner(RoutedProvisioner):
    """A step-ca `GCP` provisioner."""

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        global_claims: Mapping[str, Any],
        audiences: Audiences,
        key_set: RemoteKeySet | None = None,
    ) -> None:
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("GCP provisioner needs a name")
        self._config = dict(config)
        self._service_accounts = frozenset(string_list(config, "serviceAccounts", name))
        self._project_ids = frozenset(string_list(config, "projectIDs", name))
        if self._project_ids and config.get("organizationID"):
            raise ConfigError(f"provisioner {name!r}: projectIDs and organizationID are exclusive")
        self._instance_age = instance_age(config, name)
        self._disable_custom_sans = bool(config.get("disableCustomSANs", False))
        self._tofu = not bool(config.get("disableTrustOnFirstUse", False))
        self._token_id = f"gcp/{name}"
        self._ref = ProvisionerRef(id=self._token_id, name=name, type="GCP")
        self._claims = resolve_claims(config.get("claims"), global_claims)
        self._audiences = audiences
        url = cirrus_options(config, name).get("jwksURL") or GOOGLE_JWKS_URL
        if not isinstance(url, str):
            raise ConfigError(f"provisioner {name!r}: cirrus.jwksURL must be a URL")
        self._keys = key_set or RemoteKeySet(url)

    def _verify(self, peeked: PeekedToken, now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any], dt.datetime]:
        keys = self._keys.keys_for(peeked.header.get("kid"))
        for key in keys:
            try:
                peeked.verify_signature(key, ALGORITHMS)
                break
            except Unauthorized:
                continue
        else:
            raise Unauthorized("invalid gcp token: signature does not verify")
        claims = dict(peeked.claims)
        if claims.get("iss") != GOOGLE_ISSUER:
            raise Unauthorized("invalid gcp token: invalid issuer")
        expires = check_times(claims, now, max_lifetime=MAX_TOKEN_LIFETIME)
        if not audience_matches(self._audiences, peeked.audiences, self._token_id):
            raise Unauthorized("invalid gcp token: invalid audience claim (aud)")
        sub, email = claims.get("sub"), claims.get("email")
        if self._service_accounts and sub not in self._service_accounts and email not in self._service_accounts:
            raise Unauthorized("invalid gcp token: invalid subject claim")
        google = claims.get("google")
        engine = google.get("compute_engine") if isinstance(google, dict) else None
        if not isinstance(engine, dict):
            raise Unauthorized("invalid gcp token: google.compute_engine is missing (use format=full)")
        if self._project_ids and _text(engine, "project_id") not in self._project_ids:
            raise Unauthorized("invalid gcp token: invalid project id")
        if self._instance_age is not None:
            created = engine.get("instance_creation_timestamp")
            if isinstance(created, bool) or not isinstance(created, int | float):
                raise Unauthorized("invalid gcp token: instance_creation_timestamp is missing")
            if now - dt.datetime.fromtimestamp(created, dt.UTC) > self._instance_age:
                raise Unauthorized("invalid gcp token: google.compute_engine.instance_creation_timestamp is too old")
        for field in ("instance_id", "instance_name", "project_id", "zone"):
            if not _text(engine, field):
                raise Unauthorized(f"invalid gcp token: google.compute_engine.{field} cannot be empty")
        return claims, engine, expires

    def authorize_sign(self, peeked: PeekedToken, now: dt.datetime) -> SignAuthorization:
        """Verify an identity token; the names come from the CSR (see `iid.CSRNames`).

        Raises:
            Unauthorized: any token check fails (401).
            Unavailable: Google's key set cannot be fetched (503).
        """
        claims, engine, expires = self._verify(peeked, now)
        instance_id, instance = _text(engine, "instance_id"), _text(engine, "instance_name")
        project, zone = _text(engine, "project_id"), _text(engine, "zone")
        dns1 = f"{instance}.c.{project}.internal"
        dns2 = f"{instance}.{zone}.c.{project}.internal"
        names = CSRNames(
            common_names=(instance, instance_id, dns1, dns2),
            forced=(dns1, dns2) if self._disable_custom_sans else None,
        )
        sub = claims.get("sub")
        return SignAuthorization(
            provisioner=self._ref,
            claims=self._claims,
            subject=instance,
            sans=(),
            replay=replay_claim(
                self._ref,
                token_id=self._token_id,
                instance_id=instance_id,
                raw_token=peeked.raw,
                tofu=self._tofu,
                now=now,
                token_expires=expires,
            ),
            token_claims=claims,
            authorization_principal=instance_id,  # step-ca's webhook `authorizationPrincipal`
            credential_id=sub if isinstance(sub, str) else "",
            renewal_enabled=not self._claims.disable_renewal,
            names_from_csr=names,
            identity={"instanceID": instance_id, "account": project},
        )

    def authorize_ssh_sign(self, peeked: PeekedToken, now: dt.datetime, request: SSHOptions) -> SSHSignAuthorization:
        """Verify an identity token for `/ssh/sign`: a host certificate named for the instance.

        Raises:
            Unauthorized, Unavailable: as `authorize_sign`; Forbidden, BadRequest: the request.
        """
        _, engine, expires = self._verify(peeked, now)
        instance_id, instance = _text(engine, "instance_id"), _text(engine, "instance_name")
        project, zone = _text(engine, "project_id"), _text(engine, "zone")
        replay = replay_claim(
            self._ref, token_id=self._token_id, instance_id=instance_id, raw_token=peeked.raw,
            tofu=self._tofu, now=now, token_expires=expires,
        )
        return iid_ssh_authorization(
            SSHIdentity(self._ref, self._claims, replay, {"instanceID": instance_id, "account": project}),
            key_id=instance,
            principals=(f"{instance}.c.{project}.internal", f"{instance}.{zone}.c.{project}.internal"),
            disable_custom_sans=self._disable_custom_sans,
            request=request,
        )

    def authorize_revoke(self, peeked: PeekedToken, now: dt.datetime) -> RevokeAuthorization:
        """GCP tokens cannot revoke (step-ca: not implemented for this type).

        Raises:
            Unauthorized: always.
        """
        raise Unauthorized("provisioner.AuthorizeRevoke not implemented")
