"""The provisioner interface: a token in, an authorization (or an error) out.

Provisioners never sign; they authenticate a request and say what it may
contain. The authority owns the pipeline (DESIGN.md s.2; smallstep's
"sign options" without the runtime type switch).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509

from shared.claims import Claims
from shared.errors import Forbidden
from shared.model import ProvisionerRef
from shared.validity import Window


@dataclass(frozen=True, slots=True)
class ReplayClaim:
    """A single-use key to claim in the store once the request is otherwise valid."""

    namespace: str
    key: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ValidityLimit:
    """The validity of the credential that authorised a request (X5C's leaf): the new one must fit inside."""

    not_before: dt.datetime
    not_after: dt.datetime

    def clip(self, window: Window, *, explicit: bool) -> Window:
        """The default window clipped to the credential's end; an explicit request beyond it is refused.

        Raises:
            Forbidden: the requested validity leaves the credential's.
        """
        if window.not_before < self.not_before - dt.timedelta(minutes=1):
            raise Forbidden("requested certificate notBefore is before the provisioning credential's")
        if window.not_after <= self.not_after:
            return window
        if explicit:
            raise Forbidden("requested certificate notAfter is after the provisioning credential expiration")
        return Window(not_before=window.not_before, not_after=self.not_after)


@dataclass(frozen=True, slots=True)
class SignAuthorization:
    """What a verified sign token allows."""

    provisioner: ProvisionerRef
    claims: Claims
    subject: str
    sans: tuple[str, ...]
    replay: ReplayClaim
    token_claims: Mapping[str, Any] = field(default_factory=dict)
    csr_fingerprint: str | None = None
    credential_id: str = ""
    # The certificate that authorized the request (X5C's leaf): `.AuthorizationCrt` in templates and
    # `x5cCertificate` in webhook requests; `authorizationPrincipal` there (its CN, or an instance id).
    authorization_crt: x509.Certificate | None = None
    authorization_principal: str = ""
    renewal_enabled: bool = True
    # Instance-identity provisioners (GCP, AWS, Azure) take the names from the CSR, within what the
    # identity allows: this returns (common name, SANs) or raises Forbidden; None = the token's names.
    names_from_csr: Callable[[x509.CertificateSigningRequest], tuple[str, tuple[str, ...]]] | None = None
    validity_limit: ValidityLimit | None = None
    # What a cloud instance identity proves (`instanceID`, `account`): inventory lookup keys.
    identity: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RevokeAuthorization:
    """What a verified revoke token allows."""

    provisioner: ProvisionerRef
    serial: str
    replay: ReplayClaim


class Provisioner(Protocol):
    """One configured provisioner."""

    @property
    def ref(self) -> ProvisionerRef:
        """Id, name and type."""
        ...

    @property
    def claims(self) -> Claims:
        """Resolved claims."""
        ...

    def public_json(self) -> dict[str, Any]:
        """The provisioner's JSON as `GET /provisioners` shows it."""
        ...


class ConfiguredProvisioner:
    """What every configured provisioner shares: its config block, reference and claims.

    Each provisioner type's constructor sets `_config`, `_ref` and `_claims`;
    these accessors were written out seven times before they lived here.
    """

    _config: dict[str, Any]
    _ref: ProvisionerRef
    _claims: Claims

    @property
    def ref(self) -> ProvisionerRef:
        """Id, name and type."""
        return self._ref

    @property
    def claims(self) -> Claims:
        """Resolved claims."""
        return self._claims

    def public_json(self) -> dict[str, Any]:
        """The config block as `GET /provisioners` returns it (step-ca lists every field, secrets of OIDC included)."""
        return dict(self._config)


class RoutedProvisioner(ConfiguredProvisioner):
    """A provisioner whose tokens are routed by an audience fragment (`<type>/<name>`)."""

    _token_id: str

    @property
    def token_id(self) -> str:
        """The `aud` fragment that routes tokens here."""
        return self._token_id
