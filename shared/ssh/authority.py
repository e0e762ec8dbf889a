"""The SSH certificate authority: sign, renew, rekey, revoke, and what clients read.

The same order of effects as the X.509 pipeline (`shared.authority`): every
check first, then one `Signer.sign` call, then one atomic write of the token
claim, the record, its endpoint and events; the certificate is returned only
after that write. SSH certificates are `CertificateRecord`s of kind `ssh`
(key id as the name, principals as the SANs), so they group into endpoints
(a host is an endpoint: `/ssh/renew` attaches to the renewed certificate's
endpoint), raise the usual events and show in `cirrus endpoints`.

SSH revocations are recorded under the authority id suffixed `/ssh`, so the
X.509 CRLs never list them; the KRL is built from them instead.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from shared.clock import Clock
from shared.endpoints import endpoint_for_sign
from shared.errors import AlreadyRevoked, BadRequest, NotFound, NotImplementedYet, TokenAlreadyUsed, Unauthorized
from shared.events.base import CERTIFICATE_REVOKED, EventSink
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef, Revocation
from shared.model import subject_key as make_subject_key
from shared.provisioners.base import ReplayClaim
from shared.provisioners.jwk import JWKProvisioner
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import Audiences, PeekedToken, peek
from shared.revocation import parse_reason_code
from shared.ssh.add_user import DEFAULT_ADD_USER_COMMAND, DEFAULT_ADD_USER_PRINCIPAL, add_user_fields
from shared.ssh.certificate import (
    DEFAULT_USER_EXTENSIONS,
    HOST_CERT,
    USER_CERT,
    SSHCertificate,
    build_and_sign,
)
from shared.ssh.hosts import SSHHostIndex
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
from shared.ssh.records import SSHRecorder
from shared.ssh.sshpop import SSHPOPAuthorization, verify_sshpop
from shared.ssh.templated import apply_ssh_template
from shared.ssh.wire import SSHPublicKey, public_key_blob
from shared.store.base import DocumentStore, EndpointStore, IssuanceLedger, RevocationStore, TokenLedger
from shared.webhooks.issuance import ProvisionerWebhooks, provisioner_webhooks

FOREVER = 2**64 - 1


def ssh_revocation_authority(authority_id: str) -> str:
    """The authority id SSH revocations are kept under (never in an X.509 CRL)."""
    return f"{authority_id}/ssh"


@runtime_checkable
class SSHSignProvisioner(Protocol):
    """A provisioner type that issues SSH certificates itself (OIDC identities, cloud hosts).

    The hook for provisioner types beyond JWK: verify the token for `ssh/sign` and
    say what the certificate may hold, given the request's own options.
    """

    def authorize_ssh_sign(self, peeked: PeekedToken, now: dt.datetime, request: SSHOptions) -> SSHSignAuthorization:
        """Verify the token and return what it allows (raises the step-ca errors)."""
        ...


class SSHStore(IssuanceLedger, RevocationStore, EndpointStore, TokenLedger, DocumentStore, Protocol):
    """The store roles the SSH authority uses."""


@dataclass(frozen=True, slots=True)
class SSHIssued:
    """An SSH certificate handed to a client, with its record."""

    certificate: SSHCertificate
    record: CertificateRecord
    add_user: SSHCertificate | None = None


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
    ) -> None:
        self.authority_id = authority_id
        # The provisioners' `options.webhooks` for certType SSH/ALL (shared.webhooks); None: none configured.
        self._webhooks = webhooks if webhooks is not None else provisioner_webhooks(
            provisioners.webhooks, roots=(), clock=clock)
        self._add_user_principal = add_user_principal
        self._add_user_command = add_user_command
        self._signers = signers
        self._user_ca = signers.user.public_key()
        self._host_ca = signers.host.public_key()
        self.user_key = public_key_blob(self._user_ca)
        self.host_key = public_key_blob(self._host_ca)
        self._provisioners = provisioners
        self._audiences = audiences
        self._store = store
        self._clock = clock
        self._backdate = backdate
        self._recorder = SSHRecorder(authority_id=authority_id, ledger=store, sinks=sinks)
        self._hosts = SSHHostIndex(authority_id=authority_id, documents=store, clock=clock)

    # ------------------------------------------------------------------ sign
    def sign(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/sign` with a JWK token carrying the `step.ssh` claim.

        Raises:
            BadRequest: malformed body or key (400); Unauthorized: token (401);
            Forbidden: the request exceeds what the token or claims allow (403).
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
        provisioner: object = self._provisioners.for_token(peeked)
        if isinstance(provisioner, SSHSignProvisioner):
            auth = provisioner.authorize_ssh_sign(peeked, now, request)
        elif isinstance(provisioner, JWKProvisioner):
            # The JWK provisioner's own checks (signature, iss, aud for ssh/sign, sub, times).
            claims, expires = provisioner._verify(peeked, "ssh/sign", now)
            auth = jwk_ssh_authorization(
                provisioner_id=provisioner.ref.id,
                provisioner_name=provisioner.ref.name,
                claims=provisioner.claims,
                token_claims=claims,
                replay=provisioner._replay(peeked, claims, expires),
                request=request,
                now=now,
            )
        else:
            raise Unauthorized("provisioner does not issue SSH certificates")
        replay = auth.replay
        hooks = self._webhooks.of(auth.provisioner_name, "SSH") if self._webhooks is not None else ()
        hook_data: dict[str, Any] = {}
        if hooks and self._webhooks is not None:  # ENRICHING, before the certificate is shaped
            hook_data = self._webhooks.enrich_ssh(hooks, auth, key, peeked.claims, body.get("templateData"))
        extensions = dict(DEFAULT_USER_EXTENSIONS) if auth.cert_type == USER_CERT else {}
        critical: dict[str, str] = {}
        template = self._provisioners.ssh_templates.get(auth.provisioner_name)
        if template is not None:  # the provisioner's `options.ssh` template (issue 15), `.Webhooks` included
            extra = {"Webhooks": hook_data["Webhooks"]} if "Webhooks" in hook_data else None
            auth, fields = apply_ssh_template(template, auth, request=request, key=key, token=peeked.claims,
                                              user=body.get("templateData"), extra=extra)
            extensions, critical = fields.extensions, fields.critical_options
        after, before = resolve_validity(auth, request, now=now, backdate=self._backdate)
        cert = self._sign(key, auth.cert_type, auth.key_id, auth.principals, after, before, critical, extensions)
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
        issued = self._record(cert, ref, endpoint, now, operation="sign", new_endpoint=is_new, claim=replay)
        if add_user is None:
            return issued
        self._record(add_user, ref, endpoint, now, operation="sign", new_endpoint=False, claim=None)
        return SSHIssued(certificate=issued.certificate, record=issued.record, add_user=add_user)

    def _add_user_certificate(self, subject: SSHCertificate, key: SSHPublicKey) -> SSHCertificate:
        """step-ca's `addUserPublicKey` certificate (see `shared.ssh.add_user`), with the subject's validity."""
        fields = add_user_fields(subject, principal_name=self._add_user_principal, command=self._add_user_command)
        return self._sign(
            key, USER_CERT, fields.key_id, fields.principals, subject.valid_after, subject.valid_before,
            fields.critical_options, {},
        )

    def _sign(
        self,
        key: SSHPublicKey,
        cert_type: int,
        key_id: str,
        principals: tuple[str, ...],
        after: int,
        before: int,
        critical: Mapping[str, str],
        extensions: Mapping[str, str],
    ) -> SSHCertificate:
        signer = self._signers.host if cert_type == HOST_CERT else self._signers.user
        return build_and_sign(
            key=key,
            serial=secrets.randbits(63) + 1,
            cert_type=cert_type,
            key_id=key_id,
            principals=principals,
            valid_after=after,
            valid_before=before,
            critical_options=critical,
            extensions=extensions,
            ca=signer,
        )

    # --------------------------------------------------------- renew / rekey
    def _sshpop(self, ott: object, operation: str, *, check_validity: bool) -> SSHPOPAuthorization:
        if not isinstance(ott, str) or not ott:
            raise BadRequest("missing or empty ott")
        peeked = peek(ott)
        if "sshpop" not in peeked.header:
            raise Unauthorized("token must be an sshpop token")
        return verify_sshpop(
            peeked,
            provisioners=self._provisioners,
            user_ca=self._user_ca,
            host_ca=self._host_ca,
            audiences=self._audiences,
            operation=operation,
            now=self._clock.now(),
            check_validity=check_validity,
        )

    def renew(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/renew`: a host certificate renewed with an SSHPOP token (same key)."""
        auth = self._sshpop(body.get("ott"), "ssh/renew", check_validity=False)
        return self._renew_or_rekey(auth, None)

    def rekey(self, body: Mapping[str, Any]) -> SSHIssued:
        """`POST /ssh/rekey`: as renew, with the body's new public key; the certificate must be valid now."""
        auth = self._sshpop(body.get("ott"), "ssh/rekey", check_validity=True)
        key = parse_public_key_field(body.get("publicKey"))
        return self._renew_or_rekey(auth, key)

    def _renew_or_rekey(self, auth: SSHPOPAuthorization, new_key: SSHPublicKey | None) -> SSHIssued:
        old = auth.certificate
        if old.cert_type != HOST_CERT:
            raise BadRequest("sshpop certificate must be a host ssh certificate")
        if old.valid_after == 0 or old.valid_before in (0, FOREVER):
            raise BadRequest("cannot renew a certificate without a validity period")
        record = self._own_record(str(old.serial))
        if record is None or record.der != old.blob:
            raise Unauthorized("certificate not found")
        if self._store.get_revocation(record.serial) is not None:
            raise Unauthorized("ssh certificate has been revoked")
        claims = auth.provisioner.claims
        if claims.disable_renewal:
            raise Unauthorized(f"renew is disabled for provisioner '{auth.provisioner.ref.name}'")
        now = self._clock.now()
        ts = int(now.timestamp())
        if ts < old.valid_after:
            raise Unauthorized("ssh certificate is not yet valid")
        if ts > old.valid_before and not claims.allow_renewal_after_expiry:
            raise Unauthorized(f"ssh certificate expired on {old.not_after.isoformat()}")
        duration = old.valid_before - old.valid_after
        after = ts - int(self._backdate.total_seconds())
        cert = self._sign(
            new_key or old.key,
            old.cert_type,
            old.key_id,
            old.principals,
            after,
            after + duration,
            old.critical_options,
            old.extensions,
        )
        endpoint = Endpoint(
            id=record.endpoint_id,
            authority_id=self.authority_id,
            provisioner_id=record.provisioner.id,
            subject_key=record.subject_key,
            name=record.common_name,
            created_at=now,
        )
        op = "rekey" if new_key is not None else "renew"
        return self._record(
            cert, record.provisioner, endpoint, now, operation=op, new_endpoint=False,
            claim=auth.replay, renewed_from=record.serial,
        )

    # ---------------------------------------------------------------- revoke
    def revoke(self, body: Mapping[str, Any]) -> Revocation:
        """`POST /ssh/revoke` (passive): an SSHPOP token for the certificate itself, or a JWK token.

        Raises:
            NotImplementedYet: `passive` is not true; BadRequest: malformed fields;
            Unauthorized: token problems or a subject other than the serial; NotFound: unknown serial.
        """
        if body.get("passive") is not True:
            raise NotImplementedYet("non-passive revocation not implemented")
        serial = body.get("serial")
        if not isinstance(serial, str) or not serial.isdigit() or len(serial) > 20 or int(serial) >= 2**64:
            raise BadRequest("serial must be a decimal SSH certificate serial number")
        serial = str(int(serial))
        code = parse_reason_code(body.get("reasonCode"))
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
            raise BadRequest("reason must be a string of at most 256 characters")
        ott = body.get("ott")
        if not isinstance(ott, str) or not ott:
            raise BadRequest("missing or empty ott")
        peeked = peek(ott)
        subject, replay, provisioner_id = self._revoke_token(peeked, ott)
        if subject != serial:
            raise Unauthorized("token subject does not match the serial number")
        record = self._own_record(serial)
        if record is None:
            raise NotFound("certificate not found")
        if self._store.get_revocation(serial) is not None:
            raise AlreadyRevoked(serial)
        if not self._store.claim(replay.namespace, replay.key, replay.expires_at):
            raise TokenAlreadyUsed()
        now = self._clock.now()
        revocation = Revocation(
            serial=serial,
            authority_id=ssh_revocation_authority(self.authority_id),
            revoked_at=now.replace(microsecond=0),
            not_after=record.not_after,
            reason_code=code,
            reason=str(reason or ""),
            provisioner_id=provisioner_id,
        )
        event = self._recorder.event(
            CERTIFICATE_REVOKED,
            serial,
            now,
            {"serial": serial, "kind": "ssh", "endpointId": record.endpoint_id, "reasonCode": code,
             "authorityId": self.authority_id},
        )
        self._store.revoke(revocation, events=[event])
        self._recorder.publish([event])
        return revocation

    def _revoke_token(self, peeked: PeekedToken, ott: str) -> tuple[str, ReplayClaim, str]:
        now = self._clock.now()
        if "sshpop" in peeked.header:
            auth = self._sshpop(ott, "ssh/revoke", check_validity=True)
            if auth.subject != str(auth.certificate.serial):
                raise BadRequest("sshpop token subject must be equivalent to sshpop certificate serial number")
            return auth.subject, auth.replay, auth.provisioner.ref.id
        provisioner = self._provisioners.for_token(peeked)
        if not isinstance(provisioner, JWKProvisioner):
            raise Unauthorized("ssh revoke tokens come from a JWK or SSHPOP provisioner")
        claims, expires = provisioner._verify(peeked, "ssh/revoke", now)
        return str(claims["sub"]), provisioner._replay(peeked, claims, expires), provisioner.ref.id

    def _own_record(self, serial: str) -> CertificateRecord | None:
        record = self._store.get_certificate(serial)
        if record is None or record.authority_id != self.authority_id or record.kind != CertificateKind.SSH:
            return None
        return record

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

    # -------------------------------------------------------------- recording
    def _record(
        self,
        cert: SSHCertificate,
        provisioner: ProvisionerRef,
        endpoint: Endpoint,
        now: dt.datetime,
        *,
        operation: str,
        new_endpoint: bool,
        claim: ReplayClaim | None,
        renewed_from: str | None = None,
    ) -> SSHIssued:
        record = self._recorder.record(
            cert, provisioner, endpoint, now, operation=operation, new_endpoint=new_endpoint, claim=claim,
            renewed_from=renewed_from,
        )
        if cert.cert_type == HOST_CERT:
            self._hosts.add(cert)
        return SSHIssued(certificate=cert, record=record)
