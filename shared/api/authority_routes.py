"""The step-ca API of each further issuing authority, mounted at `/<prefix>/` (shared.authorities).

`/<prefix>/sign`, `/<prefix>/roots`, `/<prefix>/intermediates`, ... (and under
`/<prefix>/1.0/`) answer as the default mount does, for that authority only:
its chain, its provisioners, its key. `/<prefix>/crl` serves its full CRL. A
prefix no authority has is not mounted, so it gets the step-ca 404 JSON.

ACME at `/acme/{provisioner}/` (and `/<prefix>/acme/{provisioner}/` for the prefix's own ACME
provisioners): `AuthorityFinalizers` hands each order to the authority its provisioner belongs to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from werkzeug.wrappers import Request, Response

from shared.acme.finalize import IssuedChain
from shared.acme.identifiers import Identifier
from shared.api.acme_mount import AuthorityFinalizer
from shared.api.app import Mount
from shared.api.render import json_response
from shared.api.stepca import StepCAAPI
from shared.authorities import AuthorityScope, HostedAuthority, hosted
from shared.runtime import Services

_NOT_FOUND = {"status": 404, "message": "The requested resource could not be found."}


def authority_mounts(services: Services) -> dict[str, Mount]:
    """`/<prefix>` -> that authority's step-ca API, for each prefixed authority (none without `authorities`)."""
    if not services.settings.authorities:
        return {}
    return {f"/{h.prefix}": _mount(h) for h in hosted(services).others if h.prefix}


def _mount(authority: HostedAuthority) -> Mount:
    def serve(request: Request, services: Services, tail: str) -> Response:
        if tail in ("/crl", "/1.0/crl"):
            return _crl(request, services, authority)
        for acme_mount in ("/acme", "/2.0/acme"):
            if tail.startswith(acme_mount + "/"):
                return _acme(request, services, authority, tail[len(acme_mount) :])
        api: StepCAAPI = services.lazy(
            f"stepca:{authority.prefix}", lambda s: StepCAAPI(s, AuthorityScope(s, only=authority))
        )
        response = api.dispatch(request, tail or "/")
        return response if response is not None else json_response(_NOT_FOUND, 404)

    return serve


def _acme(request: Request, services: Services, authority: HostedAuthority, tail: str) -> Response:
    """`/<prefix>/acme/{provisioner}/...`: ACME for this authority's ACME provisioners only.

    The ACME server spells its URLs from the request's own path, so the directory and
    every link it hands out stay under the prefix.
    """
    from shared.api.mounts import acme

    if authority.provisioners.by_name(tail.lstrip("/").partition("/")[0]) is None:
        return json_response(_NOT_FOUND, 404)
    return acme(request, services, tail)


def _crl(request: Request, services: Services, authority: HostedAuthority) -> Response:
    """`/<prefix>/crl` (`?pem`): the authority's full CRL as published."""
    from shared.validation.ocsp_http import CRLEndpoint
    from shared.validation.wiring import blobs

    endpoint: CRLEndpoint = services.lazy(
        f"crl_http:{authority.prefix}",
        lambda s: CRLEndpoint(blobs=blobs(s), clock=s.clock, default_authority_id=authority.authority_id),
    )
    status, headers, payload = endpoint.handle_crl(request.method, "", request.query_string.decode("latin-1"))
    return Response(payload, status=status, headers=headers)


class AuthorityFinalizers:
    """ACME at `/acme/{provisioner}/` for every authority's ACME provisioners.

    Each order is checked, finalized and revoked by the authority its provisioner
    belongs to (`shared.acme.finalize.Finalizer` and `Revoker` by delegation).
    """

    def __init__(self, services: Services, default: AuthorityFinalizer) -> None:
        self._s = services
        self._default = default
        self._built: dict[str, AuthorityFinalizer] = {}

    def _for(self, provisioner: str) -> AuthorityFinalizer:
        chosen = hosted(self._s).by_provisioner(provisioner)
        if chosen is None:
            return self._default
        found = self._built.get(chosen.name)
        if found is None:
            found = self._built[chosen.name] = AuthorityFinalizer(authority=chosen.authority(), revoker=chosen.revoker)
        return found

    def check_identifiers(self, identifiers: Sequence[Identifier], *, provisioner: str) -> None:
        """As `AuthorityFinalizer.check_identifiers`, at the provisioner's authority."""
        self._for(provisioner).check_identifiers(identifiers, provisioner=provisioner)

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
        """As `AuthorityFinalizer.issue`, signed by the provisioner's authority."""
        return self._for(provisioner).issue(csr, identifiers, provisioner=provisioner, account_id=account_id,
                                            replaces=replaces, not_before=not_before, not_after=not_after)  # fmt: skip

    def revoke(self, serial: str, *, reason_code: int, provisioner: str, account_id: str | None) -> None:
        """As `AuthorityFinalizer.revoke`: only the provisioner's authority's certificates."""
        self._for(provisioner).revoke(serial, reason_code=reason_code, provisioner=provisioner, account_id=account_id)
