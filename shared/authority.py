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
`shared.leaf_profile` (a leaf's subject and extensions, default or templated),
`shared.renewal` (who may renew, what the successor copies),
`shared.authority_records` (the record, endpoint and events in one write),
`shared.authority_upstream` (the registration authority's forwarding),
`shared.issued` (what an issuance returns), `shared.revocation` (revoking).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.authority_records import IssuanceRecorder
from shared.clock import Clock
from shared.csr_policy import check_csr_against_token
from shared.endpoints import endpoint_for_sign, endpoint_id_order, endpoint_of_predecessor
from shared.errors import BadRequest, Forbidden, Unavailable
from shared.events.base import EventSink
from shared.groupcommit import CommitGroup
from shared.inventory.gate import inventory_entry
from shared.issued import AuthorityStores, Issued
from shared.keys.base import PublicKey
from shared.leaf_profile import LeafProfile, UrlForSerial
from shared.model import CertificateRecord, subject_key
from shared.policy.issuance import IssuancePolicies
from shared.provisioners.base import ReplayClaim, SignAuthorization
from shared.provisioners.registry import Provisioners
from shared.provisioners.tokens import peek
from shared.renewal import Renewals
from shared.templates import TemplateError
from shared.validity import check_window, requested_window
from shared.webhooks.wiring import provisioner_webhooks
from shared.x509.csr import csr_public_key, parse_csr, parse_csr_and_key
from shared.x509.names import SANs, check_common_name, common_name_of, split_sans
from shared.x509.profile import Issuer, sign_certificate
from shared.x509.serials import SerialSource, random_serial
from shared.x509.upstream import UpstreamIssuer

if TYPE_CHECKING:
    from shared.authority_upstream import UpstreamPath
    from shared.webhooks.issuance import ProvisionerWebhooks

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
        # Without an explicit set (tests, benches) the provisioners' own `policy` blocks still apply.
        self._policy = policy if policy is not None else IssuancePolicies.build(None, provisioners)
        self._profile = LeafProfile(self._policy, crl_url, ocsp_url, ca_issuers_url)
        self.issuer = issuer
        self.intermediates = list(intermediates)
        self.roots = list(roots)
        self.provisioners = provisioners
        self._stores = stores
        self._clock = clock
        self._backdate = backdate
        self._serials = serials
        self._recorder = IssuanceRecorder(authority_id=authority_id, ledger=stores.issuance,
                                          intermediates=self.intermediates, sinks=sinks)
        # The provisioners' `options.webhooks` (shared.webhooks); None when no provisioner has any.
        self._webhooks = webhooks if webhooks is not None else provisioner_webhooks(
            provisioners.webhooks, roots=roots, clock=clock)
        self._upstream: UpstreamPath | None = None
        if upstream is not None:  # a registration authority: its forwarding path, imported only here
            from shared.authority_upstream import UpstreamPath

            self._upstream = UpstreamPath(upstream=upstream, authority_id=authority_id, issuer=issuer,
                                          webhooks=self._webhooks, recorder=self._recorder)  # fmt: skip
        self._renewals = Renewals(
            authority_id=authority_id, issuer=issuer, stores=stores, provisioners=provisioners, clock=clock,
            backdate=backdate, serials=serials, profile=self._profile, may_sign=self._refuse_if_signing_revoked,
            issuer_revoked=issuer_revoked, upstream=self._upstream, recorder=self._recorder)

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
            endpoint = endpoint_of_predecessor(previous, authority_id=self.authority_id, now=now)
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
            from shared.x509.templated import template_data  # only for a template or webhooks

            try:
                # Without webhooks (which are sent the data) only what the template reads is built.
                reads = configured.template.data_reads if configured is not None and not hooks else None
                data = template_data(common_name, sans,
                                     rsa_key=isinstance(public_key, rsa.RSAPublicKey), csr=csr,
                                     token=auth.token_claims, user=user,
                                     extra=configured.data if configured is not None else None,
                                     authorization_crt=auth.authorization_crt,
                                     reads=reads)
            except TemplateError as exc:  # the request's templateData or the token as Go would refuse them
                raise BadRequest(f"template data: {exc.message}") from exc
        if inventory is not None and configured is not None:  # `.Inventory`: the entry shared.inventory found
            data["Inventory"] = inventory
        if hooks and self._webhooks is not None:  # ENRICHING: `.Webhooks` before the template renders
            self._webhooks.enrich_x509(hooks, auth, csr, public_key, data)
        if self._upstream is not None:  # registration authority: every check above ran here
            return self._upstream.issue(auth, csr, sans, common_name, window, endpoint, is_new, previous,
                                        claim=claim, group=group, now=now, hooks=(hooks, data))
        serial = self._serials()
        names: tuple[str, tuple[str, ...]] | None = (
            common_name, (*sans.dns, *map(str, sans.ips), *sans.emails, *sans.uris))
        if configured is not None:
            subject, extensions, names = self._profile.templated(configured, auth, serial, data)
        else:
            extensions = self._profile.extensions(public_key, sans, common_name, auth, serial)
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
        return self._recorder.record(
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
        return self._renewals.reissue(certificate, None, replay, group, None)

    def rekey(self, *, certificate: x509.Certificate, csr_pem: object, group: CommitGroup | None = None) -> Issued:
        """Renew with the public key of a new CSR.

        Raises:
            BadRequest: missing/invalid CSR.
            Unauthorized: as for renew.
        """
        if not isinstance(csr_pem, str) or not csr_pem:
            raise BadRequest("missing csr")
        csr = parse_csr(csr_pem)
        return self._renewals.reissue(certificate, csr_public_key(csr), None, group, csr)

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
