"""The issuing pipeline: authorize -> check -> build -> sign -> record -> event.

One `Authority` is one issuing CA (its certificate and key) with its
provisioners. Order of effects matters for "nothing lost, nothing leaked":
every check runs first, then the certificate is signed, then one atomic write
stores the one-time token claim, the record, its endpoint and its events; the
certificate is returned only after that write. A replayed token fails that
write (so it never yields a recorded certificate), and a crash or store
failure after signing leaves an orphan signature nobody received and a token
the client can retry with.

Its parts live by concern: `shared.csr_policy` (the CSR against its token),
`shared.renewal` (who may renew, what the successor copies), `shared.issued`
(what an issuance returns), `shared.revocation` (revoking).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.clock import Clock
from shared.csr_policy import check_csr_against_token
from shared.endpoints import endpoint_for_sign, endpoint_id_order
from shared.errors import BadRequest, Forbidden, Unauthorized, Unavailable
from shared.events.base import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REKEYED,
    CERTIFICATE_RENEWED,
    ENDPOINT_CREATED,
    EventSink,
    authority_event,
    publish_to_sinks,
)
from shared.groupcommit import CommitGroup
from shared.inventory.gate import inventory_entry
from shared.issued import AuthorityStores, Issued
from shared.keys.base import PublicKey
from shared.model import CertificateKind, CertificateRecord, Endpoint, Event, ProvisionerRef, TokenClaim, subject_key
from shared.policy.issuance import IssuancePolicies
from shared.provisioners.base import ReplayClaim, SignAuthorization
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import peek
from shared.renewal import renewable_record, successor_extensions, successor_window
from shared.store.base import IssuanceWrite
from shared.templates import TemplateError
from shared.templates.fields import decode_rendered
from shared.validity import check_window, requested_window
from shared.webhooks.certificate import requested_certificate_json
from shared.webhooks.config import Webhook
from shared.webhooks.issuance import ProvisionerWebhooks, provisioner_webhooks
from shared.x509.csr import check_public_key, csr_public_key, parse_csr, parse_csr_and_key
from shared.x509.names import SANs, check_common_name, common_name_of, sans_of, sans_of_names, split_sans
from shared.x509.profile import (
    Issuer,
    ca_leaf_extensions,
    default_leaf_extensions,
    provisioner_extension,
    sign_certificate,
)
from shared.x509.serials import SerialSource, random_serial
from shared.x509.templated import template_data, templated_leaf
from shared.x509.upstream import UpstreamIssuer, UpstreamWindow

log = logging.getLogger("cirrus.authority")

UrlForSerial = Callable[[int], str | None]
__all__ = ["Authority", "AuthorityStores", "Issued"]


class Authority:
    """One issuing authority."""

    def __init__(
        self,
        *,
        authority_id: str,
        issuer: Issuer,
        intermediates: Sequence[x509.Certificate],
        roots: Sequence[x509.Certificate],
        provisioners: Provisioners,
        stores: AuthorityStores,
        clock: Clock,
        backdate: dt.timedelta = dt.timedelta(minutes=1),
        serials: SerialSource = random_serial,
        crl_url: UrlForSerial | None = None,
        ocsp_url: str | None = None,
        ca_issuers_url: str | None = None,
        sinks: Sequence[EventSink] = (),
        webhooks: ProvisionerWebhooks | None = None,
        policy: IssuancePolicies | None = None,
        upstream: UpstreamIssuer | None = None,
        issuer_revoked: Callable[[x509.Certificate], bool] | None = None,
        intermediate_revoked: Callable[[x509.Certificate], bool] | None = None,
    ) -> None:
        self.authority_id = authority_id
        # Whether the intermediate that signed a certificate is in its root's ARL (shared.rotation).
        self._issuer_revoked = issuer_revoked
        # Whether a root's ARL lists an intermediate: this one must not sign once it does.
        self._intermediate_revoked = intermediate_revoked
        self._upstream = upstream
        # Without an explicit set (tests, benches) the provisioners' own `policy` blocks still apply.
        self._policy = policy if policy is not None else IssuancePolicies.build(None, provisioners)
        self.issuer = issuer
        self.intermediates = list(intermediates)
        self._chain_pem = tuple(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.intermediates)
        self.roots = list(roots)
        self.provisioners = provisioners
        self._stores = stores
        self._clock = clock
        self._backdate = backdate
        self._serials = serials
        self._crl_url = crl_url
        self._ocsp_url = ocsp_url
        self._ca_issuers_url = ca_issuers_url
        self._sinks = list(sinks)
        # The provisioners' `options.webhooks` (shared.webhooks); None when no provisioner has any.
        self._webhooks = webhooks if webhooks is not None else provisioner_webhooks(
            provisioners.webhooks, roots=roots, clock=clock)

    # ----------------------------------------------------------------- sign
    def sign(
        self,
        *,
        csr_pem: object,
        ott: object,
        not_before: object = None,
        not_after: object = None,
        group: CommitGroup | None = None,
        template_data: object = None,
    ) -> Issued:
        """`POST /sign`: a one-time token and a CSR in, a certificate out.

        `template_data` is the request's `templateData` (`.Insecure.User` in custom templates).

        With `group` (the HTTP loop's, see `shared.groupcommit`) the issuance
        is recorded with the group's commit instead of at once; the caller's
        answer must wait for that commit.

        Raises:
            BadRequest: missing/invalid CSR or malformed fields (400).
            Unauthorized: token problems, including replay (401).
            Forbidden: the CSR or validity is not what the token allows (403).
        """
        if not isinstance(csr_pem, str) or not csr_pem:
            raise BadRequest("missing csr")
        if not isinstance(ott, str) or not ott:
            raise BadRequest("missing ott")
        if template_data is not None and not isinstance(template_data, dict):
            raise BadRequest("templateData must be a JSON object")
        csr, csr_key = parse_csr_and_key(csr_pem)
        now = self._clock.now()
        peeked = peek(ott)
        provisioner = self.provisioners.for_token(peeked)
        auth = provisioner.authorize_sign(peeked, now)
        public_key = csr_public_key(csr, csr_key)
        from_csr = auth.names_from_csr
        if from_csr is not None:  # instance identity: the CSR's names, within what the identity allows
            subject, names = from_csr(csr)
            auth = replace(auth, subject=subject, sans=names)
        try:
            sans = split_sans(list(auth.sans))
        except ValueError as exc:
            raise Forbidden(f"invalid subject alternative name: {exc}") from exc
        if from_csr is None:
            check_csr_against_token(csr, auth, sans)
        return self._issue_new(
            auth, public_key=public_key, sans=sans, common_name=auth.subject,
            not_before=not_before, not_after=not_after, now=now, group=group, csr=csr, user=template_data,
        )

    def issue_for_identifiers(
        self,
        *,
        provisioner_name: str,
        csr: x509.CertificateSigningRequest,
        names: Sequence[str],
        replaces: str | None = None,
        not_before: object = None,
        not_after: object = None,
    ) -> Issued:
        """Issue for a provisioner that proved control of `names` itself (ACME).

        The provisioner's claims apply (lifetimes, `disableRenewal` grouping); the common
        name is the CSR's if it is one of the names, else the first DNS name that fits.
        `replaces` (RFC 9773) attaches the certificate to the replaced one's endpoint.

        Raises:
            Forbidden: unknown provisioner, key or names not allowed, validity out of bounds.
        """
        provisioner = self.provisioners.by_name(provisioner_name)
        if provisioner is None:
            raise Forbidden("provisioner not found")
        public_key = csr_public_key(csr)
        try:
            sans = split_sans(list(names))
        except ValueError as exc:
            raise Forbidden(f"invalid subject alternative name: {exc}") from exc
        csr_cn = common_name_of(csr.subject)
        if csr_cn and csr_cn.lower() in {n.lower() for n in names}:
            common_name = csr_cn
        else:
            common_name = next((d for d in sans.dns if len(d) <= 64), "")
        now = self._clock.now()
        previous = self._stores.issuance.get_certificate(replaces) if replaces else None
        if previous is not None and previous.authority_id != self.authority_id:
            previous = None
        auth = SignAuthorization(
            provisioner=provisioner.ref,
            claims=provisioner.claims,
            subject=common_name,
            sans=tuple(names),
            replay=ReplayClaim(namespace="", key="", expires_at=now),
            renewal_enabled=not provisioner.claims.disable_renewal,
        )
        return self._issue_new(
            auth, public_key=public_key, sans=sans, common_name=common_name,
            not_before=not_before, not_after=not_after, now=now, claim=False, previous=previous, csr=csr,
        )

    def _issue_new(
        self,
        auth: SignAuthorization,
        *,
        public_key: PublicKey,
        sans: SANs,
        common_name: str,
        not_before: object,
        not_after: object,
        now: dt.datetime,
        claim: bool = True,
        previous: CertificateRecord | None = None,
        group: CommitGroup | None = None,
        csr: x509.CertificateSigningRequest | None = None,
        user: Mapping[str, Any] | None = None,
    ) -> Issued:
        """Validity, endpoint, claim, sign, record: the tail every fresh issuance shares."""
        self._refuse_if_signing_revoked()
        window = requested_window(
            not_before=not_before,
            not_after=not_after,
            now=now,
            default=auth.claims.default_tls,
            backdate=self._backdate,
        )
        if auth.validity_limit is not None:
            window = auth.validity_limit.clip(window, explicit=not_after not in (None, ""))
        check_window(window, now=now, minimum=auth.claims.min_tls, maximum=auth.claims.max_tls, backdate=self._backdate)
        self._policy.check(auth.provisioner.id, common_name, sans)
        inventory = inventory_entry(self.provisioners.inventory_options.get(auth.provisioner.name),
                                    self._stores.inventories, auth, common_name=common_name, names=sans.all)
        skey = subject_key(common_name, sans.all)
        if previous is not None:
            endpoint = Endpoint(
                id=previous.endpoint_id, authority_id=self.authority_id, provisioner_id=previous.provisioner.id,
                subject_key=previous.subject_key, name=previous.common_name, created_at=now,
            )
            is_new = False
        else:
            endpoint = endpoint_for_sign(
                authority_id=self.authority_id,
                provisioner_id=auth.provisioner.id,
                subject_key=skey,
                name=common_name or (sans.all[0] if sans.all else ""),
                renewal_enabled=auth.renewal_enabled,
                now=now,
                id_order=endpoint_id_order(self._stores.endpoints),
            )
            # A subject-grouped endpoint may already exist; only a new one gets `endpoint.created`.
            is_new = auth.renewal_enabled or self._stores.endpoints.get_endpoint(endpoint.id) is None
        if common_name:
            try:
                check_common_name(common_name)
            except ValueError as exc:  # the token's subject, which becomes the CN
                raise Forbidden(f"invalid subject: {exc}") from exc
        hooks = self._webhooks.of(auth.provisioner.name, "X509") if self._webhooks is not None else ()
        configured = self.provisioners.x509_templates.get(auth.provisioner.name)
        data: dict[str, Any] = {}
        if hooks or configured is not None:
            try:
                data = template_data(common_name, sans.general_names(),
                                     rsa_key=isinstance(public_key, rsa.RSAPublicKey), csr=csr,
                                     token=dict(auth.token_claims), user=user,
                                     extra=configured.data if configured is not None else None,
                                     authorization_crt=auth.authorization_crt)
            except TemplateError as exc:  # the request's templateData or the token as Go would refuse them
                raise BadRequest(f"template data: {exc.message}") from exc
        if inventory is not None and configured is not None:  # `.Inventory`: the entry shared.inventory found
            data["Inventory"] = inventory
        if hooks and self._webhooks is not None:  # ENRICHING: `.Webhooks` before the template renders
            self._webhooks.enrich_x509(hooks, auth, csr, public_key, data)
        if self._upstream is not None:  # registration authority: every check above ran here
            return self._issue_upstream(self._upstream, auth, csr, sans, common_name, window, endpoint, is_new,
                                        previous, claim=claim, group=group, now=now, hooks=(hooks, data))
        serial = self._serials()
        names: tuple[str, tuple[str, ...]] | None = (
            common_name, (*sans.dns, *map(str, sans.ips), *sans.emails, *sans.uris))
        templated = self._templated_leaf(auth, serial, data) if configured is not None else None
        if templated is not None:
            subject, extensions, names = templated  # the names the template put in the certificate
        else:
            extensions = self._leaf_extensions(public_key, sans, common_name, auth, serial)
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
        cert = sign_certificate(
            self.issuer,
            subject=subject,
            public_key=public_key,
            serial=serial,
            not_before=window.not_before,
            not_after=window.not_after,
            extensions=extensions,
        )
        if hooks and self._webhooks is not None:  # AUTHORIZING: before anything is recorded or returned
            self._webhooks.authorize_x509(hooks, auth, cert, data)
        return self._record(
            cert,
            auth.provisioner,
            endpoint,
            now,
            renewed_from=previous.serial if previous is not None else None,
            operation="sign",
            new_endpoint=is_new,
            create_endpoint=previous is None,
            claim=auth.replay if claim else None,
            names=names,
            group=group,
        )

    def _leaf_extensions(
        self, public_key: PublicKey, sans: SANs, common_name: str, auth: SignAuthorization, serial: int
    ) -> list[x509.Extension[x509.ExtensionType]]:
        names = sans.general_names()
        if not names:
            raise Forbidden("certificate must have at least one subject alternative name")
        prov_ext = None
        if not auth.claims.disable_smallstep_extensions:
            prov_ext = provisioner_extension(auth.provisioner.type, auth.provisioner.name, auth.credential_id)
        return default_leaf_extensions(
            public_key=public_key,
            san=x509.SubjectAlternativeName(names),
            san_critical=not common_name,
            provisioner=prov_ext,
            crl_url=self._crl_url(serial) if self._crl_url else None,
            ocsp_url=self._ocsp_url,
            ca_issuers_url=self._ca_issuers_url,
        )

    def _templated_leaf(
        self, auth: SignAuthorization, serial: int, data: Mapping[str, Any],
    ) -> tuple[x509.Name, list[x509.Extension[x509.ExtensionType]], tuple[str, tuple[str, ...]]]:
        """Subject, extensions and names from the provisioner's `options.x509` template over `data` (issue 15)."""
        configured = self.provisioners.x509_templates[auth.provisioner.name]
        try:
            leaf = templated_leaf(decode_rendered(configured.template.render(data), ssh=False))
        except TemplateError as exc:
            raise BadRequest(exc.reason if exc.failed else f"certificate template: {exc}") from exc
        if not leaf.sans and not leaf.common_name:
            raise BadRequest("certificate template: the certificate needs a subject alternative name")
        # Names a template added (from templateData, webhook data...) meet the same policy as the token's.
        if self._policy.applies(auth.provisioner.id):
            self._policy.check(auth.provisioner.id, leaf.common_name, sans_of_names(leaf.sans))
        prov_ext = None
        if not auth.claims.disable_smallstep_extensions:
            prov_ext = provisioner_extension(auth.provisioner.type, auth.provisioner.name, auth.credential_id)
        extensions = [*leaf.extensions, *ca_leaf_extensions(
            provisioner=prov_ext, crl_url=self._crl_url(serial) if self._crl_url else None,
            ocsp_url=self._ocsp_url, ca_issuers_url=self._ca_issuers_url,
        )]
        return leaf.subject, extensions, (leaf.common_name, leaf.san_strings)

    # ------------------------------------------------------- renew / rekey
    def renew(
        self, *, certificate: x509.Certificate, replay: ReplayClaim | None = None, group: CommitGroup | None = None
    ) -> Issued:
        """Renew an authenticated certificate (mTLS or x5c bearer token).

        The caller has already verified that `certificate` chains to this CA
        and that the requester holds its key.

        Raises:
            Unauthorized: revoked, unknown, expired, not yet valid, or renewal disabled.
        """
        return self._renew_or_rekey(certificate, None, replay, group)

    def rekey(self, *, certificate: x509.Certificate, csr_pem: object, group: CommitGroup | None = None) -> Issued:
        """Renew with the public key of a new CSR.

        Raises:
            BadRequest: missing/invalid CSR.
            Unauthorized: as for renew.
        """
        if not isinstance(csr_pem, str) or not csr_pem:
            raise BadRequest("missing csr")
        csr = parse_csr(csr_pem)
        return self._renew_or_rekey(certificate, csr_public_key(csr), None, group, csr)

    def _renew_or_rekey(
        self,
        old: x509.Certificate,
        new_key: PublicKey | None,
        replay: ReplayClaim | None,
        group: CommitGroup | None = None,
        csr: x509.CertificateSigningRequest | None = None,
    ) -> Issued:
        now = self._clock.now()
        if self._issuer_revoked is not None and self._issuer_revoked(old):
            raise Unauthorized("the certificate's issuing intermediate has been revoked")
        self._refuse_if_signing_revoked()
        record = renewable_record(
            old,
            authority_id=self.authority_id,
            certificates=self._stores.issuance,
            revocations=self._stores.revocations,
            provisioners=self.provisioners,
            now=now,
        )
        serial = record.serial
        window = successor_window(old, now=now, backdate=self._backdate)
        new_serial = self._serials()
        if self._upstream is not None:  # an RA forwards a rekey as a fresh sign for the recorded names
            return self._renew_upstream(self._upstream, record, csr, window, new_key is not None, replay, group, now)
        public_key = new_key if new_key is not None else check_public_key(old.public_key())
        extensions = successor_extensions(old, self._crl_url(new_serial) if self._crl_url else None)
        cert = sign_certificate(
            self.issuer,
            subject=old.subject,
            public_key=public_key,
            serial=new_serial,
            not_before=window.not_before,
            not_after=window.not_after,
            extensions=extensions,
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
            cert, record.provisioner, endpoint, now, renewed_from=serial, operation=op, new_endpoint=False,
            claim=replay,
            group=group,
        )

    def _refuse_if_signing_revoked(self) -> None:
        """503 before anything is signed, claimed or recorded if a root's ARL lists this intermediate.

        `cirrus ca revoke-intermediate` refuses the generation that issues now, but
        an ARL published from another machine (or before a rollback) can still name
        it; a CA must never sign under a revoked intermediate, so issuance stops
        until the operator activates a successor. A registration authority signs
        nothing here, so it has nothing to check.
        """
        if self._upstream is None and self._intermediate_revoked is not None and self.intermediates \
                and self._intermediate_revoked(self.intermediates[0]):  # fmt: skip
            raise Unavailable("the issuing intermediate has been revoked; issuance resumes once its successor "
                              "is activated")  # fmt: skip

    # ---------------------------------------------------------- recording
    def _record(
        self,
        cert: x509.Certificate,
        provisioner: ProvisionerRef,
        endpoint: Endpoint,
        now: dt.datetime,
        *,
        renewed_from: str | None,
        operation: str,
        new_endpoint: bool,
        create_endpoint: bool = True,
        claim: ReplayClaim | None = None,
        names: tuple[str, tuple[str, ...]] | None = None,
        group: CommitGroup | None = None,
    ) -> Issued:
        # `names`: the (common name, SANs in the extension's order) just put in the certificate,
        # so they need not be read back out of it.
        cn, sans = names if names is not None else (common_name_of(cert.subject), tuple(sans_of(cert)))
        record = CertificateRecord(
            serial=str(cert.serial_number),
            authority_id=self.authority_id,
            kind=CertificateKind.X509,
            der=cert.public_bytes(serialization.Encoding.DER),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            provisioner=provisioner,
            endpoint_id=endpoint.id,
            subject_key=endpoint.subject_key,
            common_name=cn,
            sans=sans,
            issued_at=now,
            renewed_from=renewed_from,
            operation=operation,
        )
        event_type = {"sign": CERTIFICATE_ISSUED, "renew": CERTIFICATE_RENEWED, "rekey": CERTIFICATE_REKEYED}[operation]
        data: dict[str, Any] = {
            "serial": record.serial,
            "authorityId": self.authority_id,
            "endpointId": endpoint.id,
            "provisioner": provisioner.name,
            "commonName": cn,
            "sans": list(sans),
            "notBefore": record.not_before.isoformat(),
            "notAfter": record.not_after.isoformat(),
        }
        if renewed_from:
            data["renewedFrom"] = renewed_from
        events = [self._event(event_type, record.serial, now, data)]
        if new_endpoint:
            events.append(
                self._event(ENDPOINT_CREATED, endpoint.id, now, {"endpointId": endpoint.id, "name": endpoint.name})
            )
        # A subject-grouped endpoint that was just read as existing is not sent again: the
        # create would be refused and cost a second commit and a read (see docs/costs.md).
        # (One created by another instance after our read found none is kept by the store.)
        create = operation == "sign" and create_endpoint and new_endpoint
        # The token claim rides in the same atomic write: a replay can never be recorded,
        # and a failed write leaves the token usable for the client's retry.
        token = TokenClaim(claim.namespace, claim.key, claim.expires_at) if claim is not None else None
        if group is not None:
            group.add(
                IssuanceWrite(record, endpoint if create else None, events, token), lambda: self._publish(events)
            )
        else:
            self._stores.issuance.record_issuance(
                record, new_endpoint=endpoint if create else None, events=events, claim=token
            )
            self._publish(events)
        return Issued(certificate=cert, chain=self.intermediates, record=record, chain_pem=self._chain_pem)

    def _event(self, etype: str, subject: str, now: dt.datetime, data: Mapping[str, Any]) -> Event:
        return authority_event(self.authority_id, etype, subject, now, data)

    def _publish(self, events: Sequence[Event]) -> None:
        """Hand events to the sinks; a sink failure never undoes the issuance."""
        publish_to_sinks(self._sinks, events, log=log)

    # ------------------------------------------- registration authority
    def _issue_upstream(
        self,
        upstream: UpstreamIssuer,
        auth: SignAuthorization,
        csr: x509.CertificateSigningRequest | None,
        sans: SANs,
        common_name: str,
        window: UpstreamWindow,
        endpoint: Endpoint,
        is_new: bool,
        previous: CertificateRecord | None,
        *,
        claim: bool,
        group: CommitGroup | None,
        now: dt.datetime,
        hooks: tuple[tuple[Webhook, ...], dict[str, Any]] = ((), {}),
    ) -> Issued:
        """`shared.ra`: the upstream signs what this pipeline authorized; recorded here as a local issuance."""
        if not sans.all:
            raise Forbidden("certificate must have at least one subject alternative name")
        if hooks[0] and self._webhooks is not None and csr is not None:  # AUTHORIZING before anything is forwarded
            planned = requested_certificate_json(common_name, sans, self.issuer.certificate.subject)
            self._webhooks.authorize_x509_request(hooks[0], auth, planned, csr.public_key(), window, hooks[1])
        cert, chain = upstream.issue(csr, common_name=common_name, sans=sans, window=window)
        issued = self._record(
            cert, auth.provisioner, endpoint, now, renewed_from=previous.serial if previous is not None else None,
            operation="sign", new_endpoint=is_new, create_endpoint=previous is None,
            claim=auth.replay if claim else None, group=group,
        )
        return replace(issued, chain=chain, chain_pem=None)

    def _renew_upstream(
        self,
        upstream: UpstreamIssuer,
        record: CertificateRecord,
        csr: x509.CertificateSigningRequest | None,
        window: UpstreamWindow,
        rekey: bool,
        replay: ReplayClaim | None,
        group: CommitGroup | None,
        now: dt.datetime,
    ) -> Issued:
        """`shared.ra`: a rekey is a fresh upstream sign for the recorded names, on the same endpoint."""
        sans = split_sans(list(record.sans))
        cert, chain = upstream.issue(csr, common_name=record.common_name, sans=sans, window=window)
        endpoint = Endpoint(
            id=record.endpoint_id, authority_id=self.authority_id, provisioner_id=record.provisioner.id,
            subject_key=record.subject_key, name=record.common_name, created_at=now,
        )
        issued = self._record(
            cert, record.provisioner, endpoint, now, renewed_from=record.serial,
            operation="rekey" if rekey else "renew", new_endpoint=False, claim=replay, group=group,
        )
        return replace(issued, chain=chain, chain_pem=None)
