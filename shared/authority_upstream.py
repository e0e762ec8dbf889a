"""The registration authority's path through the pipeline: forward, then record here.

With an `UpstreamIssuer` (`shared.ra`), `shared.authority` runs every check of
its pipeline (token, CSR, validity, policy, inventory, enriching webhooks) and
then, instead of signing, asks the upstream authority for the certificate and
records what comes back as a local issuance, with the upstream's chain. A rekey
is a fresh upstream sign for the recorded names on the same endpoint. Kept apart
so the pipeline reads as one path and the RA's differences sit in one place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from cryptography import x509

from shared.authority_records import IssuanceRecorder
from shared.endpoints import endpoint_of_predecessor
from shared.errors import Forbidden
from shared.groupcommit import CommitGroup
from shared.issued import Issued
from shared.model import CertificateRecord, Endpoint
from shared.provisioners.base import ReplayClaim, SignAuthorization
from shared.webhooks.certificate import requested_certificate_json
from shared.webhooks.config import Webhook
from shared.webhooks.issuance import ProvisionerWebhooks
from shared.x509.names import SANs, split_sans
from shared.x509.profile import Issuer
from shared.x509.upstream import UpstreamIssuer, UpstreamWindow


class UpstreamPath:
    """Forwarding an authorized issuance to the upstream authority."""

    def __init__(
        self,
        *,
        upstream: UpstreamIssuer,
        authority_id: str,
        issuer: Issuer,
        webhooks: ProvisionerWebhooks | None,
        recorder: IssuanceRecorder,
    ) -> None:
        """`issuer`'s subject goes into what AUTHORIZING webhooks are shown as the planned certificate;
        what comes back is recorded with the authority's `recorder`."""
        self._upstream = upstream
        self._authority_id = authority_id
        self._issuer = issuer
        self._webhooks = webhooks
        self._recorder = recorder

    def issue(
        self,
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
        """The upstream signs what the pipeline authorized; recorded here as a local issuance."""
        if not sans.all:
            raise Forbidden("certificate must have at least one subject alternative name")
        if hooks[0] and self._webhooks is not None and csr is not None:  # AUTHORIZING before anything is forwarded
            planned = requested_certificate_json(common_name, sans, self._issuer.certificate.subject)
            self._webhooks.authorize_x509_request(hooks[0], auth, planned, csr.public_key(), window, hooks[1])
        cert, chain = self._upstream.issue(csr, common_name=common_name, sans=sans, window=window)
        issued = self._recorder.record(
            cert, auth.provisioner, endpoint, now, renewed_from=previous.serial if previous is not None else None,
            operation="sign", new_endpoint=is_new, create_endpoint=previous is None,
            claim=auth.replay if claim else None, group=group,
        )
        return replace(issued, chain=chain, chain_pem=None)

    def renew(
        self,
        previous: CertificateRecord,
        csr: x509.CertificateSigningRequest | None,
        window: UpstreamWindow,
        rekey: bool,
        replay: ReplayClaim | None,
        group: CommitGroup | None,
        now: dt.datetime,
    ) -> Issued:
        """A rekey is a fresh upstream sign for the recorded names, on the same endpoint."""
        sans = split_sans(list(previous.sans))
        cert, chain = self._upstream.issue(csr, common_name=previous.common_name, sans=sans, window=window)
        endpoint = endpoint_of_predecessor(previous, authority_id=self._authority_id, now=now)
        issued = self._recorder.record(
            cert, previous.provisioner, endpoint, now, renewed_from=previous.serial,
            operation="rekey" if rekey else "renew", new_endpoint=False, claim=replay, group=group,
        )
        return replace(issued, chain=chain, chain_pem=None)
