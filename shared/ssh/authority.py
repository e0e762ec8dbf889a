"""The SSH certificate authority: sign, renew, rekey, revoke, and what clients read.

The same order of effects as the X.509 pipeline (`shared.authority`): every
check first, then one `Signer.sign` call, then one atomic write of the token
claim, the record, its endpoint and events; the certificate is returned only
after that write. SSH certificates are `CertificateRecord`s of kind `ssh`
(key id as the name, principals as the SANs), so they group into endpoints
(a host is an endpoint: `/ssh/renew` attaches to the renewed certificate's
endpoint), raise the usual events and show in `cirrus endpoints`.

This module holds the `/ssh/sign` pipeline (authorize -> inventory ->
webhooks -> template -> validity -> sign -> record) and the reads; signing
and recording are `shared.ssh.issued`'s, the SSHPOP operations
`shared.ssh.renewal`'s and `shared.ssh.revocation`'s. The names other modules
import from here (`SSHIssued`, `SSHStore`, `ssh_revocation_authority`) stay
importable from here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from shared.clock import Clock
from shared.endpoints import endpoint_for_sign
from shared.errors import BadRequest, Unauthorized
from shared.events.base import EventSink
from shared.inventory.base import InventoryReader
from shared.inventory.gate import ssh_inventory_entry
from shared.model import ProvisionerRef, Revocation
from shared.model import subject_key as make_subject_key
from shared.provisioners.jwk import JWKProvisioner
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import Audiences, PeekedToken, peek
from shared.ssh.add_user import DEFAULT_ADD_USER_COMMAND, DEFAULT_ADD_USER_PRINCIPAL, add_user_fields
from shared.ssh.certificate import DEFAULT_USER_EXTENSIONS, USER_CERT, SSHCertificate
from shared.ssh.hosts import SSHHostIndex
from shared.ssh.issued import FOREVER, SSHIssued, SSHStore, ssh_issuer, ssh_revocation_authority
from shared.ssh.keys import SSHSigners
from shared.ssh.krl import build_krl
from shared.ssh.options import (
    SSHOptions,
    SSHSignAuthorization,
    jwk_ssh_authorization,
    parse_options,
    parse_public_key_field,
    resolve_validity,
)
from shared.ssh.renewal import SSHRenewals
from shared.ssh.revocation import SSHRevocations
from shared.ssh.sshpop import SSHPOPVerifier
from shared.ssh.templated import apply_ssh_template
from shared.ssh.wire import SSHPublicKey, public_key_blob
from shared.webhooks.issuance import ProvisionerWebhooks
from shared.webhooks.wiring import provisioner_webhooks

__all__ = ["FOREVER", "SSHAuthority", "SSHIssued", "SSHSignProvisioner", "SSHStore", "ssh_revocation_authority"]


@runtime_checkable
class SSHSignProvisioner(Protocol):
    """A provisioner type that issues SSH certificates itself (OIDC identities, cloud hosts).

    The hook for provisioner types beyond JWK: verify the token for `ssh/sign` and
    say what the certificate may hold, given the request's own options.
    """

    def authorize_ssh_sign(self, peeked: PeekedToken, now: dt.datetime, request: SSHOptions) -> SSHSignAuthorization:
        """Verify the token and return what it allows (raises the step-ca errors)."""
        ...


class SSHAuthority:
    """One authority's SSH user and host CA."""

    def __init__(
        self,
        *,
        authority_id: str,
        signers: SSHSigners,
        provisioners: Provisioners,
        audiences: Audiences,
        store: SSHStore,
        clock: Clock,
        backdate: dt.timedelta = dt.timedelta(minutes=1),
        sinks: Sequence[EventSink] = (),
        add_user_principal: str = DEFAULT_ADD_USER_PRINCIPAL,
        add_user_command: str = DEFAULT_ADD_USER_COMMAND,
        webhooks: ProvisionerWebhooks | None = None,
        inventories: InventoryReader | None = None,
    ) -> None:
        self.authority_id = authority_id
        # The provisioners' `options.webhooks` for certType SSH/ALL (shared.webhooks); None: none configured.
        self._webhooks = webhooks if webhooks is not None else provisioner_webhooks(
            provisioners.webhooks, roots=(), clock=clock)
        # The provisioners' `options.inventory` reads entries here (shared.inventory.gate); None: no store role.
        self._inventories = inventories
        self._add_user_principal = add_user_principal
        self._add_user_command = add_user_command
        user_ca, host_ca = signers.user.public_key(), signers.host.public_key()
        self.user_key = public_key_blob(user_ca)
        self.host_key = public_key_blob(host_ca)
        self._provisioners = provisioners
        self._store = store
        self._clock = clock
        self._backdate = backdate
        self._hosts = SSHHostIndex(authority_id=authority_id, documents=store, clock=clock)
        self._issuer = ssh_issuer(authority_id=authority_id, signers=signers, store=store, sinks=sinks,
                                  hosts=self._hosts)
        sshpop = SSHPOPVerifier(provisioners=provisioners, user_ca=user_ca, host_ca=host_ca, audiences=audiences,
                                clock=clock)
        self._renewals = SSHRenewals(issuer=self._issuer, sshpop=sshpop, revocations=store, clock=clock,
                                     backdate=backdate)
        self._revocations = SSHRevocations(issuer=self._issuer, sshpop=sshpop, provisioners=provisioners,
                                           store=store, clock=clock)

    # ------------------------------------------------------------------ sign
    def _authorize(self, peeked: PeekedToken, now: dt.datetime, request: SSHOptions) -> SSHSignAuthorization:
        provisioner: object = self._provisioners.for_token(peeked)
        if isinstance(provisioner, SSHSignProvisioner):
            return provisioner.authorize_ssh_sign(peeked, now, request)
        if isinstance(provisioner, JWKProvisioner):
            # The JWK provisioner's own checks (signature, iss, aud for ssh/sign, sub, times).
            claims, expires = provisioner._verify(peeked, "ssh/sign", now)
            return jwk_ssh_authorization(
                provisioner_id=provisioner.ref.id,
                provisioner_name=provisioner.ref.name,
                claims=provisioner.claims,
                token_claims=claims,
                replay=provisioner._replay(peeked, claims, expires),
                request=request,
                now=now,
            )
        raise Unauthorized("provisioner does not issue SSH certificates")

    def sign(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/sign` with a token of a provisioner that issues SSH certificates.

        Raises:
            BadRequest: malformed body or key (400); Unauthorized: token (401);
            Forbidden: the request exceeds what the token or claims allow, or the provisioner's
            inventory refuses it (403).
        """
        now = self._clock.now()
        key = parse_public_key_field(body.get("publicKey"))
        add_user_key = None
        if body.get("addUserPublicKey"):
            add_user_key = parse_public_key_field(body.get("addUserPublicKey"), "addUserPublicKey")
        ott = body.get("ott")
        if not isinstance(ott, str) or not ott:
            raise BadRequest("missing or empty ott")
        request = parse_options(body, now=now, where="request")
        peeked = peek(ott)
        auth = self._authorize(peeked, now, request)
        replay = auth.replay
        # `options.inventory`: refuses before anything else is asked or signed; the entry is `.Inventory`.
        inventory = ssh_inventory_entry(self._provisioners.inventory_options.get(auth.provisioner_name),
                                        self._inventories, auth, peeked.claims)
        hooks = self._webhooks.of(auth.provisioner_name, "SSH") if self._webhooks is not None else ()
        hook_data: dict[str, Any] = {}
        if hooks and self._webhooks is not None:  # ENRICHING, before the certificate is shaped
            hook_data = self._webhooks.enrich_ssh(hooks, auth, key, peeked.claims, body.get("templateData"))
        extensions = dict(DEFAULT_USER_EXTENSIONS) if auth.cert_type == USER_CERT else {}
        critical: dict[str, str] = {}
        template = self._provisioners.ssh_templates.get(auth.provisioner_name)
        if template is not None:  # the provisioner's `options.ssh` template (issue 15): `.Webhooks`, `.Inventory`
            extra: dict[str, Any] = {"Webhooks": hook_data["Webhooks"]} if "Webhooks" in hook_data else {}
            if inventory is not None:
                extra["Inventory"] = inventory
            auth, fields = apply_ssh_template(template, auth, request=request, key=key, token=peeked.claims,
                                              user=body.get("templateData"), extra=extra)
            extensions, critical = fields.extensions, fields.critical_options
        after, before = resolve_validity(auth, request, now=now, backdate=self._backdate)
        cert = self._issuer.sign(key, auth.cert_type, auth.key_id, auth.principals, after, before, critical,
                                 extensions)
        if hooks and self._webhooks is not None:  # AUTHORIZING, before anything is recorded or returned
            self._webhooks.authorize_ssh(hooks, auth.provisioner_name, cert, hook_data)
        skey = make_subject_key(auth.key_id, auth.principals)
        endpoint = endpoint_for_sign(
            authority_id=self.authority_id,
            provisioner_id=auth.provisioner_id,
            subject_key=skey,
            name=auth.key_id,
            renewal_enabled=auth.renewal_enabled,
            now=now,
        )
        is_new = auth.renewal_enabled or self._store.get_endpoint(endpoint.id) is None
        ref = ProvisionerRef(id=auth.provisioner_id, name=auth.provisioner_name, type=auth.provisioner_type)
        add_user = self._add_user_certificate(cert, add_user_key) if add_user_key is not None else None
        issued = self._issuer.record(cert, ref, endpoint, now, operation="sign", new_endpoint=is_new, claim=replay)
        if add_user is None:
            return issued
        self._issuer.record(add_user, ref, endpoint, now, operation="sign", new_endpoint=False, claim=None)
        return SSHIssued(certificate=issued.certificate, record=issued.record, add_user=add_user)

    def _add_user_certificate(self, subject: SSHCertificate, key: SSHPublicKey) -> SSHCertificate:
        """step-ca's `addUserPublicKey` certificate (see `shared.ssh.add_user`), with the subject's validity."""
        fields = add_user_fields(subject, principal_name=self._add_user_principal, command=self._add_user_command)
        return self._issuer.sign(
            key, USER_CERT, fields.key_id, fields.principals, subject.valid_after, subject.valid_before,
            fields.critical_options, {},
        )

    # ------------------------------------------------ renew / rekey / revoke
    def renew(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/renew` (`shared.ssh.renewal`)."""
        return self._renewals.renew(body)

    def rekey(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/rekey` (`shared.ssh.renewal`)."""
        return self._renewals.rekey(body)

    def revoke(self, body: Mapping[str, Any]) -> Revocation:
        """`POST /ssh/revoke` (`shared.ssh.revocation`)."""
        return self._revocations.revoke(body)

    # ------------------------------------------------------------------ reads
    def check_host(self, principal: str) -> bool:
        """Whether an unexpired host certificate names `principal` (case-insensitive)."""
        return self._hosts.exists(principal)

    def hosts(self) -> list[dict[str, Any]]:
        """`GET /ssh/hosts`: the principals of unexpired host certificates."""
        return self._hosts.hosts()

    def krl(self, *, version: int) -> bytes:
        """A KRL of every revoked, unexpired SSH certificate of this authority."""
        now = self._clock.now()
        revoked = self._store.list_revocations(ssh_revocation_authority(self.authority_id), not_after_since=now)
        serials = [int(r.serial) for r in revoked]
        return build_krl(
            {self.user_key: serials, self.host_key: serials},
            version=version,
            generated_at=int(now.timestamp()),
            comment=f"cirrus {self.authority_id}",
        )
