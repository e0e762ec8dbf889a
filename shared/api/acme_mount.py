"""ACME under `/acme/{provisioner}/` and `/2.0/acme/{provisioner}/`, backed by the issuing authority.

`AuthorityFinalizer` is the whole contract between the ACME layer (which proves
control of identifiers) and the authority (which applies the provisioner's
claims, groups endpoints by subject and records the certificate before it is
returned).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from werkzeug.wrappers import Request, Response

from shared.acme.finalize import IssuedChain
from shared.acme.identifiers import Identifier
from shared.authority import Authority
from shared.errors import Forbidden
from shared.revocation import Revoker as AuthorityRevoker
from shared.x509.names import split_sans

if TYPE_CHECKING:
    from shared.acme.server import ACMEServer
    from shared.runtime import Services

NONCE_KEY_COLLECTION = "cirrus_secrets"
NONCE_KEY_ID = "acme-nonce-key"


class AuthorityFinalizer:
    """`shared.acme.finalize.Finalizer` and `Revoker` on top of the authority."""

    def __init__(self, *, authority: Authority, revoker: AuthorityRevoker) -> None:
        self._authority = authority
        self._revoker = revoker

    def check_identifiers(self, identifiers: Sequence[Identifier], *, provisioner: str) -> None:
        """Refuse names the authority could never put in a certificate.

        Raises:
            Forbidden: a name is malformed or the provisioner is unknown.
        """
        if self._authority.provisioners.by_name(provisioner) is None:
            raise Forbidden("provisioner not found")
        try:
            split_sans([i.value for i in identifiers])
        except ValueError as exc:
            raise Forbidden(str(exc)) from exc

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        identifiers: Sequence[Identifier],
        *,
        provisioner: str,
        account_id: str,
        replaces: str | None,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
    ) -> IssuedChain:
        """Sign and record a certificate for exactly `identifiers`."""
        issued = self._authority.issue_for_identifiers(
            provisioner_name=provisioner,
            csr=csr,
            names=[i.value for i in identifiers],
            replaces=replaces,
            not_before=not_before.isoformat() if not_before else None,
            not_after=not_after.isoformat() if not_after else None,
        )
        return IssuedChain(serial=issued.record.serial, leaf=issued.certificate, chain=tuple(issued.chain))

    def revoke(self, serial: str, *, reason_code: int, provisioner: str, account_id: str | None) -> None:
        """Revoke by decimal serial (raises AlreadyRevoked)."""
        self._revoker.revoke(
            serial, reason_code=reason_code, reason="", provisioner_id=f"acme/{provisioner}", mtls=False
        )


def nonce_key(services: Services) -> bytes:
    """The HMAC key for ACME nonces, shared by every instance through the store.

    Created once (create-if-absent), so all processes and function instances agree
    without extra configuration.
    """
    store = services.store
    store.create_document(
        NONCE_KEY_COLLECTION, NONCE_KEY_ID, {"key": base64.b64encode(secrets.token_bytes(32)).decode()}
    )
    found = store.get_document(NONCE_KEY_COLLECTION, NONCE_KEY_ID)
    assert found is not None
    return base64.b64decode(found[0]["key"])


def build_acme(services: Services) -> ACMEServer:
    """The ACME server for every ACME provisioner in the config."""
    from shared.acme.config import ACMEProvisionerConfig
    from shared.acme.server import ACMEServer

    configs = {
        str(p["name"]): ACMEProvisionerConfig.from_json(p)
        for p in services.settings.provisioners
        if str(p.get("type", "")).upper() == "ACME"
    }
    finalizer = AuthorityFinalizer(authority=services.authority, revoker=services.revoker)
    return ACMEServer(
        clock=services.clock,
        documents=services.store,
        ledger=services.store,
        provisioners=configs,
        finalizer=finalizer,
        revoker=finalizer,
        certificates=services.store,
        revocations=services.store,
        nonce_key=nonce_key(services),
        external_url=services.settings.external_url or None,
        max_body=services.settings.max_body_bytes,
    )


def acme(request: Request, services: Services, tail: str) -> Response:
    """Mount: `tail` is `/{provisioner}/{rest}`."""
    server: ACMEServer = services.lazy("acme", build_acme)
    provisioner, _, rest = tail.lstrip("/").partition("/")
    return server.handle(request, provisioner, "/" + rest)
