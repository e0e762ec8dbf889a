"""The OIDC provisioner: ID tokens from an OpenID provider (reference s.2.3).

Discovery (`configurationEndpoint`, `/.well-known/openid-configuration`
appended when missing, `{tenantid}` in the issuer replaced by `tenantID`) is
fetched on first use and cached; the JWKS is a `RemoteKeySet` (refreshed once
on an unknown `kid`, at most once a minute). Checks, as step-ca's: the
discovery issuer, `clientID` in `aud`, `azp` (when present) = `clientID`,
`domains` for non-admins, `groups`; plus an explicitly unverified email
(`email_verified: false`) is refused. The replay key is `nonce`. Non-admins get
the token's names (CN `sub`; SANs the email and `<iss>#<sub>`), whatever the
CSR asks; admins (email or group in `admins`) get the CSR's names and may revoke.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509

from shared.claims import resolve_claims
from shared.errors import ConfigError, Unauthorized, Unavailable
from shared.model import ProvisionerRef
from shared.provisioners.base import ConfiguredProvisioner, ReplayClaim, RevokeAuthorization, SignAuthorization
from shared.provisioners.iid import string_list
from shared.provisioners.jwks import Fetch, RemoteKeySet, fetch_json
from shared.provisioners.keyalgs import algorithms_for_key
from shared.provisioners.ssh_sign import SSHIdentity, oidc_ssh_authorization
from shared.provisioners.tokens import PeekedToken, check_times, token_hash
from shared.ssh.options import SSHOptions, SSHSignAuthorization
from shared.x509.names import common_name_of, sans_of

MAX_ID_TOKEN_LIFETIME = dt.timedelta(hours=24)
WELL_KNOWN = "/.well-known/openid-configuration"


def sanitize_email(email: str) -> str:
    """The domain lower-cased, the local part as is (step-ca's comparison form)."""
    local, at, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}" if at else email


@dataclass(frozen=True, slots=True)
class _Names:
    """Token names for non-admins; the CSR's for admins."""

    subject: str
    sans: tuple[str, ...]
    admin: bool

    def __call__(self, csr: x509.CertificateSigningRequest) -> tuple[str, tuple[str, ...]]:
        if self.admin:
            return common_name_of(csr.subject) or self.subject, tuple(sans_of(csr)) or self.sans
        return self.subject, self.sans


class OIDCProvisioner(ConfiguredProvisioner):
    """A step-ca `OIDC` provisioner."""

    def __init__(
        self,
        *,
        config: Mapping[str, Any],
        global_claims: Mapping[str, Any],
        fetch: Fetch | None = None,
    ) -> None:
        name, client_id = config.get("name"), config.get("clientID")
        endpoint = config.get("configurationEndpoint")
        if not isinstance(name, str) or not name:
            raise ConfigError("OIDC provisioner needs a name")
        if not isinstance(client_id, str) or not client_id:
            raise ConfigError(f"provisioner {name!r}: clientID cannot be empty")
        if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
            raise ConfigError(f"provisioner {name!r}: configurationEndpoint must be a URL")
        parts = urlsplit(endpoint)
        if not parts.path.endswith(WELL_KNOWN):
            parts = parts._replace(path=parts.path.rstrip("/") + WELL_KNOWN)
        self._discovery_url = urlunsplit(parts)
        self._config = dict(config)
        self._client_id = client_id
        self._tenant = str(config.get("tenantID") or "")
        self._admins = tuple(string_list(config, "admins", name))
        self._admin_emails = frozenset(sanitize_email(a) for a in self._admins)
        self._domains = tuple(d.lower() for d in string_list(config, "domains", name))
        self._groups = frozenset(string_list(config, "groups", name))
        self._ref = ProvisionerRef(id=f"oidc/{name}", name=name, type="OIDC")
        self._claims = resolve_claims(config.get("claims"), global_claims, renewal_default_disabled=True)
        self._fetch = fetch
        self._lock = threading.Lock()
        self._issuer: str | None = None
        self._keys: RemoteKeySet | None = None

    @property
    def client_id(self) -> str:
        """The `azp`/`aud` that routes tokens here."""
        return self._client_id

    @property
    def admins(self) -> tuple[str, ...]:
        """The `admins` e-mail addresses and groups."""
        return self._admins

    def discovery(self) -> dict[str, Any]:
        """The provider's discovery document (the dashboard's sign-in reads its endpoints).

        Raises:
            Unavailable: the provider does not answer with a JSON object.
        """
        doc, _ = fetch_json(self._discovery_url, self._fetch)
        return doc

    def verify_id_token(self, peeked: PeekedToken, now: dt.datetime) -> tuple[dict[str, Any], bool]:
        """An ID token's claims, checked as for a sign token, and whether it names an admin.

        Raises:
            Unauthorized, Unavailable: as `authorize_sign`.
        """
        claims, _expires, admin = self._verify(peeked, now)
        return claims, admin

    def _discovered(self) -> tuple[str, RemoteKeySet]:
        with self._lock:
            if self._issuer is None or self._keys is None:
                doc, _ = fetch_json(self._discovery_url, self._fetch)
                issuer, jwks_uri = doc.get("issuer"), doc.get("jwks_uri")
                if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or not jwks_uri:
                    raise Unavailable("the OpenID provider's discovery document is incomplete")
                self._issuer = issuer.replace("{tenantid}", self._tenant) if self._tenant else issuer
                self._keys = RemoteKeySet(jwks_uri, fetch=self._fetch)
            return self._issuer, self._keys

    def _is_admin(self, claims: Mapping[str, Any]) -> bool:
        email = claims.get("email")
        if isinstance(email, str) and email and sanitize_email(email) in self._admin_emails:
            return True
        groups = claims.get("groups")
        return isinstance(groups, list) and any(isinstance(g, str) and g in self._admins for g in groups)

    def _verify(self, peeked: PeekedToken, now: dt.datetime) -> tuple[dict[str, Any], dt.datetime, bool]:
        issuer, keys = self._discovered()
        for key in keys.keys_for(peeked.header.get("kid")):
            try:
                peeked.verify_signature(key, algorithms_for_key(key))
                break
            except Unauthorized:
                continue
        else:
            raise Unauthorized("invalid oidc token: signature does not verify")
        claims = dict(peeked.claims)
        expires = check_times(claims, now, max_lifetime=MAX_ID_TOKEN_LIFETIME)
        if claims.get("iss") != issuer:
            raise Unauthorized("invalid oidc token: invalid issuer")
        if self._client_id not in peeked.audiences:
            raise Unauthorized("invalid oidc token: invalid audience")
        azp = claims.get("azp")
        if azp not in (None, "") and azp != self._client_id:
            raise Unauthorized("failed to validate oidc token payload: invalid azp")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("invalid oidc token: subject cannot be empty")
        email = claims.get("email")
        if email is not None and not isinstance(email, str):
            raise Unauthorized("invalid oidc token: email must be a string")
        if email and claims.get("email_verified") is False:
            raise Unauthorized("failed to validate oidc token payload: email is not verified")
        admin = self._is_admin(claims)
        if email and self._domains and not admin:
            domain = sanitize_email(email).rpartition("@")[2]
            if domain not in self._domains:
                raise Unauthorized("failed to validate oidc token payload: email is not allowed")
        if self._groups:
            groups = claims.get("groups")
            if not isinstance(groups, list) or not self._groups.intersection(g for g in groups if isinstance(g, str)):
                raise Unauthorized("oidc token payload validation failed: invalid group")
        return claims, expires, admin

    def _replay(self, peeked: PeekedToken, claims: Mapping[str, Any], expires: dt.datetime) -> ReplayClaim:
        nonce = claims.get("nonce")
        key = nonce if isinstance(nonce, str) and nonce else token_hash(peeked.raw)
        if len(key) > 256:
            raise Unauthorized("invalid oidc token: nonce too long")
        return ReplayClaim(namespace=f"ott:{self._ref.id}", key=key, expires_at=expires)

    def authorize_sign(self, peeked: PeekedToken, now: dt.datetime) -> SignAuthorization:
        """Verify an ID token; names as step-ca's default (or admin) template gives them.

        Raises:
            Unauthorized: any token check fails (401).
            Unavailable: discovery or keys cannot be fetched (503).
        """
        claims, expires, admin = self._verify(peeked, now)
        sans: list[str] = []
        if claims.get("email"):
            sans.append(str(claims["email"]))
        iss = urlsplit(str(claims["iss"]))
        if iss.scheme:
            sans.append(urlunsplit(iss._replace(fragment=str(claims["sub"]))))
        return SignAuthorization(
            provisioner=self._ref,
            claims=self._claims,
            subject=str(claims["sub"]),
            sans=tuple(sans),
            replay=self._replay(peeked, claims, expires),
            token_claims=claims,
            credential_id=self._client_id,
            renewal_enabled=not self._claims.disable_renewal,
            names_from_csr=_Names(str(claims["sub"]), tuple(sans), admin),
        )

    def authorize_ssh_sign(self, peeked: PeekedToken, now: dt.datetime, request: SSHOptions) -> SSHSignAuthorization:
        """Verify an ID token for `/ssh/sign`; what it allows is `ssh_sign.oidc_ssh_authorization`'s.

        Raises:
            Unauthorized, Unavailable: as `authorize_sign`; Forbidden, BadRequest: the request.
        """
        claims, expires, admin = self._verify(peeked, now)
        identity = SSHIdentity(self._ref, self._claims, self._replay(peeked, claims, expires))
        return oidc_ssh_authorization(identity, email=str(claims.get("email") or ""), admin=admin, request=request)

    def authorize_revoke(self, peeked: PeekedToken, now: dt.datetime) -> RevokeAuthorization:
        """Only admins' tokens revoke (`sub` is the serial).

        Raises:
            Unauthorized: a token check fails or the holder is not an admin.
        """
        claims, expires, admin = self._verify(peeked, now)
        if not admin:
            raise Unauthorized("cannot revoke with non-admin oidc token")
        return RevokeAuthorization(
            provisioner=self._ref, serial=str(claims["sub"]), replay=self._replay(peeked, claims, expires)
        )
