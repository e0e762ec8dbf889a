"""SSH certificates from OIDC and cloud instance identities, as step-ca's `AuthorizeSSHSign` gives them.

The provisioners verify their tokens exactly as for X.509 (same checks, same
single-use claim, so trust on first use covers SSH too: an instance gets one
certificate from its identity, X.509 or SSH, and then renews); this module says
what the verified identity may put in the certificate (reference s.2.3, 3.4):

* OIDC (step-ca's `DefaultIdentityFunc` and `sshutil.DefaultTemplate`): an
  e-mail is required; user certificates only, key id the e-mail, principals
  the sanitised local part, the raw local part (if different) and the e-mail;
  the request may only ask for a subset. Admins (`DefaultAdminTemplate`) name
  the type, key id and principals themselves, and may ask for host certificates.
* Instance identities (GCP, AWS, Azure; `sshutil.DefaultIIDTemplate`): host
  certificates only; key id the instance (GCP: its name, AWS: its id, Azure:
  the VM name, as step-ca sets them); principals the request's, which must be
  a subset of the instance's own names under `disableCustomSANs` (and default
  to them), and must be given otherwise.

Hand-written rather than rendered: step's default SSH templates reduce to these
rules (a test renders them and compares field by field), and skipping the render
saves its CPU; a provisioner's own `options.ssh` template is applied over them in
`shared.ssh.templated`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.claims import Claims
from shared.errors import BadRequest, Forbidden, Unauthorized
from shared.model import ProvisionerRef
from shared.provisioners.base import ReplayClaim
from shared.ssh.certificate import CERT_TYPES, HOST_CERT, USER_CERT
from shared.ssh.options import SSHOptions, SSHSignAuthorization

_SSH_USER = re.compile(r"[a-z][-a-z0-9_]*", re.ASCII)


def sanitize_ssh_user_principal(email: str) -> str:
    """step-ca's `SanitizeSSHUserPrincipal`: the local part lower-cased, dots dropped, others `_`."""
    local = email.rpartition("@")[0] if "@" in email else email
    out = []
    for upper in local:
        ch = upper.lower()[:1]  # rune by rune, as Go's ToLower (`İ` -> `i`, not `i` + a combining dot)
        if "a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-":
            out.append(ch)
        elif ch != ".":
            out.append("_")
    return "".join(out)


def oidc_principals(email: str) -> tuple[str, ...]:
    """The principals an e-mail identity gets (step-ca's default OIDC identity).

    Raises:
        Unauthorized: the sanitised local part is not a valid user name.
    """
    name = sanitize_ssh_user_principal(email)
    if not _SSH_USER.fullmatch(name):
        raise Unauthorized(f"invalid principal '{name[:64]}' from email '{email[:128]}'")
    names = [name]
    if "@" in email:
        names.append(email.rpartition("@")[0])
    names.append(email)
    unique: list[str] = []
    for n in names:
        if n and n not in unique:
            unique.append(n)
    return tuple(unique)


@dataclass(frozen=True, slots=True)
class SSHIdentity:
    """The verified provisioner side of an SSH sign request."""

    ref: ProvisionerRef
    claims: Claims
    replay: ReplayClaim
    identity: Mapping[str, str] = field(default_factory=dict)  # `instanceID`/`account` (inventory keys)

    def require_enabled(self) -> None:
        """step-ca's `sshCA is disabled` check.

        Raises:
            Unauthorized: the provisioner's claims do not enable the SSH CA.
        """
        if not self.claims.enable_ssh_ca:
            raise Unauthorized(f"sshCA is disabled for {self.ref.type.lower()} provisioner '{self.ref.name}'")

    def authorization(self, cert_type: int, key_id: str, principals: tuple[str, ...], *,
                      proven: tuple[int, str, tuple[str, ...]] | None = None) -> SSHSignAuthorization:
        """The authorization for the certificate's fields (validity from the request and the claims);
        `proven` is what the identity itself proves, when a template should see other values."""
        return SSHSignAuthorization(
            provisioner_id=self.ref.id,
            provisioner_name=self.ref.name,
            provisioner_type=self.ref.type,
            claims=self.claims,
            cert_type=cert_type,
            key_id=key_id,
            principals=principals,
            valid_after=None,
            valid_before=None,
            replay=self.replay,
            renewal_enabled=not self.claims.disable_renewal,
            template_identity=proven,
            identity=self.identity,
        )


def _match(want_type: str, want_principals: tuple[str, ...], request: SSHOptions) -> None:
    """step-ca's `SignSSHOptions.match` for the fields an identity fixes.

    Raises:
        Forbidden: another type, or principals outside the allowed ones.
    """
    if request.cert_type and request.cert_type != want_type:
        raise Forbidden(f"ssh certificate type does not match - got {request.cert_type}, want {want_type}")
    if want_principals and request.principals and not set(request.principals) <= set(want_principals):
        raise Forbidden(
            f"ssh certificate principals does not match - got {list(request.principals)[:16]},"
            f" want {list(want_principals)}"
        )


def oidc_ssh_authorization(
    identity: SSHIdentity, *, email: str, admin: bool, request: SSHOptions
) -> SSHSignAuthorization:
    """OIDC `AuthorizeSSHSign` on a verified ID token.

    Raises:
        Unauthorized: SSH disabled, no e-mail, or an e-mail that yields no user name.
        BadRequest: an admin request without type, key id or principals.
        Forbidden: a non-admin asking for a host certificate or other principals.
    """
    identity.require_enabled()
    if not email:
        raise Unauthorized("failed to validate oidc token payload: email not found")
    if admin:
        if not request.cert_type:
            raise BadRequest("ssh certificate certType cannot be empty")
        if not request.key_id:
            raise BadRequest("ssh certificate keyID cannot be empty")
        if not request.principals:
            raise BadRequest("ssh certificate principals cannot be empty")
        try:  # step-ca's template data for an admin still holds the e-mail's user names
            proven = (USER_CERT, email, oidc_principals(email))
        except Unauthorized:
            proven = (USER_CERT, email, (email,))
        return identity.authorization(CERT_TYPES[request.cert_type], request.key_id, request.principals,
                                      proven=proven)
    principals = oidc_principals(email)
    _match("user", principals, request)
    return identity.authorization(USER_CERT, email, principals)


def iid_ssh_authorization(
    identity: SSHIdentity,
    *,
    key_id: str,
    principals: tuple[str, ...],
    disable_custom_sans: bool,
    request: SSHOptions,
) -> SSHSignAuthorization:
    """GCP/AWS/Azure `AuthorizeSSHSign` on a verified identity token.

    Raises:
        Unauthorized: SSH disabled for the provisioner.
        BadRequest: custom principals allowed but none requested.
        Forbidden: a user certificate, or principals beyond the instance's under `disableCustomSANs`.
    """
    identity.require_enabled()
    if disable_custom_sans:
        _match("host", principals, request)
    else:
        _match("host", (), request)
        if not request.principals:
            raise BadRequest("ssh certificate principals cannot be empty")
    return identity.authorization(HOST_CERT, key_id, request.principals or principals,
                                  proven=(HOST_CERT, key_id, principals))
