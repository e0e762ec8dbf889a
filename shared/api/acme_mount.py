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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.wrappers import Request, Response

from shared.acme.finalize import IssuedChain
from shared.acme.identifiers import Identifier
from shared.acme.nonce_ledger import NONCE_LEDGER_EXTRA
from shared.api.render import read_json_object
from shared.api.stepca import sign_response
from shared.authority import Authority
from shared.errors import BadRequest, CAError, Forbidden, NotFound, Unauthorized, Unavailable
from shared.revocation import Revoker as AuthorityRevoker
from shared.x509.csr import parse_csr
from shared.x509.names import split_sans

if TYPE_CHECKING:
    from shared.acme.server import ACMEServer
    from shared.api.authority_routes import AuthorityFinalizers
    from shared.issuer_link import IssuerLink
    from shared.runtime import Services

NONCE_KEY_COLLECTION = "cirrus_secrets"
NONCE_KEY_ID = "acme-nonce-key"


class AuthorityFinalizer:
    """`shared.acme.finalize.Finalizer` and `Revoker` on top of the authority."""

    def __init__(
        self, *, authority: Authority, revoker: AuthorityRevoker, current: Callable[[], Authority] | None = None
    ) -> None:
        """`current`, when given, names the authority issuing now (shared.rotation) at each finalize."""
        self._authority = authority
        self._current = current
        self._revoker = revoker
        self._provisioners = authority.provisioners

    def check_identifiers(self, identifiers: Sequence[Identifier], *, provisioner: str) -> None:
        """Refuse names the authority could never put in a certificate.

        Raises:
            Forbidden: a name is malformed or the provisioner is unknown.
        """
        if self._provisioners.by_name(provisioner) is None:
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
        authority = self._current() if self._current is not None else self._authority
        issued = authority.issue_for_identifiers(
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


class RemoteFinalizer(AuthorityFinalizer):
    """The same contract, signing through the private issuer function (no key here).

    Identifier checks are the in-process ones (the issuer repeats them before signing).
    """

    def __init__(self, *, link: IssuerLink, revoker: AuthorityRevoker, provisioners: Any) -> None:
        self._link = link
        self._revoker = revoker
        self._provisioners = provisioners

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
        """POST the order's CSR and names to the issuer; parse the chain it returns."""
        status, body = self._link.call_json(
            "/internal/acme/issue",
            {
                "provisioner": provisioner,
                "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                "names": [i.value for i in identifiers],
                "replaces": replaces,
                "notBefore": not_before.isoformat() if not_before else None,
                "notAfter": not_after.isoformat() if not_after else None,
            },
        )
        if status != 201:
            raise _error_for(status, str(body.get("message", "")))
        chain = [x509.load_pem_x509_certificate(c.encode()) for c in body.get("certChain", [])]
        if not chain:
            raise Unavailable("the issuer returned no certificate")
        return IssuedChain(serial=str(chain[0].serial_number), leaf=chain[0], chain=tuple(chain[1:]))


def _error_for(status: int, message: str) -> CAError:
    """Rebuild the issuer's refusal as the same typed error."""
    for cls in (BadRequest, Unauthorized, Forbidden, NotFound):
        if cls.status == status:
            return cls(message or None)
    return Unavailable("the issuer could not sign the certificate")


def internal_acme(request: Request, services: Services, tail: str) -> Response:
    """The issuer function's `/internal/acme/issue`: finalize on behalf of the public `acme` function.

    Served only by the private `issuer` function (its invokers are the public functions'
    service accounts); it repeats every authority check before signing.
    """
    if request.method != "POST" or tail.strip("/") != "issue":
        raise NotFound()
    body = read_json_object(request, max_bytes=services.settings.max_body_bytes)
    names = body.get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadRequest("names must be a list of strings")
    csr = parse_csr(str(body.get("csr") or ""))
    issued = services.issuing().issue_for_identifiers(
        provisioner_name=str(body.get("provisioner") or ""),
        csr=csr,
        names=names,
        replaces=body.get("replaces") if isinstance(body.get("replaces"), str) else None,
        not_before=body.get("notBefore"),
        not_after=body.get("notAfter"),
    )
    return sign_response(issued)


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
    finalizer: AuthorityFinalizer | AuthorityFinalizers
    if services.issuer_link is not None:
        finalizer = RemoteFinalizer(
            link=services.issuer_link, revoker=services.revoker, provisioners=services.provisioners
        )
    else:
        # Built once per instance, so it asks for the generation issuing now at each finalize.
        finalizer = AuthorityFinalizer(authority=services.issuing(), revoker=services.revoker,
                                       current=services.issuing)  # fmt: skip
        if services.settings.authorities:  # further issuing authorities' ACME provisioners (shared.authorities)
            from shared.api.authority_routes import AuthorityFinalizers

            configs.update({
                str(p["name"]): ACMEProvisionerConfig.from_json(p)
                for a in services.settings.authorities for p in a.provisioners
                if str(p.get("type", "")).upper() == "ACME"
            })  # fmt: skip
            finalizer = AuthorityFinalizers(services, finalizer)
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
        nonce_ledger=services.extras.get(NONCE_LEDGER_EXTRA),
    )


def acme(request: Request, services: Services, tail: str) -> Response:
    """Mount: `tail` is `/{provisioner}/{rest}`."""
    server: ACMEServer = services.lazy("acme", build_acme)
    provisioner, _, rest = tail.lstrip("/").partition("/")
    return server.handle(request, provisioner, "/" + rest)


def acme_environ(environ: dict[str, Any], services: Services, tail: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """`acme` straight from the WSGI environ (see `ACMEServer.handle_environ`)."""
    server: ACMEServer = services.lazy("acme", build_acme)
    provisioner, _, rest = tail.lstrip("/").partition("/")
    return server.handle_environ(environ, provisioner, "/" + rest)
