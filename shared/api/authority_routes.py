"""The step-ca API of each further issuing authority, mounted at `/<prefix>/` (shared.authorities).

`/<prefix>/sign`, `/<prefix>/roots`, `/<prefix>/intermediates`, ... (and under
`/<prefix>/1.0/`) answer as the default mount does, for that authority only:
its chain, its provisioners, its key. `/<prefix>/crl` serves its full CRL. A
prefix no authority has is not mounted, so it gets the step-ca 404 JSON.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

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
        api: StepCAAPI = services.lazy(
            f"stepca:{authority.prefix}", lambda s: StepCAAPI(s, AuthorityScope(s, only=authority))
        )
        response = api.dispatch(request, tail or "/")
        return response if response is not None else json_response(_NOT_FOUND, 404)

    return serve


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
