"""Sub-applications mounted beside the step-ca API (validation authority, ACME).

Each component is built lazily through `Services.lazy`, so a function that
serves only the step-ca API never imports the OCSP responder or the ACME server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:  # the OCSP function imports this module without the step-ca app behind these names
    from shared.api.app import DirectMount, Mount
    from shared.runtime import Services


def ocsp(request: Request, services: Services, tail: str) -> Response:
    """RFC 6960 / 5019 OCSP at `/ocsp` (POST body or base64 GET path)."""
    from shared.validation.generations import lazy_name
    from shared.validation.wiring import ocsp_endpoint

    # Rebuilt when the bucket's copy of the rotation record names another set of intermediates.
    endpoint = services.lazy(lazy_name(services, "ocsp", published=True), ocsp_endpoint)
    body = request.get_data(cache=False) if request.method == "POST" else b""
    status, headers, payload = endpoint.handle_ocsp(request.method, tail, body)
    return Response(payload, status=status, headers=headers)


def crl(request: Request, services: Services, tail: str) -> Response:
    """Published CRLs at `/crl` (`/crl?pem` for PEM), read from object storage."""
    from shared.validation.wiring import crl_endpoint

    endpoint = services.lazy("crl_http", crl_endpoint)
    status, headers, payload = endpoint.handle_crl(request.method, tail, request.query_string.decode("latin-1"))
    return Response(payload, status=status, headers=headers)


def acme(request: Request, services: Services, tail: str) -> Response:
    """RFC 8555 ACME (imported on first use)."""
    from shared.api.acme_mount import acme as serve

    return serve(request, services, tail)


def ssh(request: Request, services: Services, tail: str) -> Response:
    """step-ca's SSH routes (imported on first use)."""
    from shared.api.ssh import ssh as serve

    return serve(request, services, tail)


def dashboard(request: Request, services: Services, tail: str) -> Response:
    """The operator dashboard (imported on first use)."""
    from shared.dashboard.app import dashboard as serve

    return serve(request, services, tail)


def linked(request: Request, services: Services, tail: str) -> Response:
    """Linked authorities' reports (imported on first use)."""
    from shared.api.linked import linked as serve

    return serve(request, services, tail)


def admin_inventories(request: Request, services: Services, tail: str) -> Response:
    """Inventories behind an admin token (imported on first use)."""
    from shared.api.admin_inventory import admin_inventories as serve

    return serve(request, services, tail)


def default_mounts(services: Services) -> dict[str, Mount]:
    """Every mount the single-process server serves."""
    mounts: dict[str, Mount] = {
        "/ocsp": ocsp, "/crl": crl, "/1.0/crl": crl, "/acme": acme, "/2.0/acme": acme, "/dashboard": dashboard,
    }
    mounts.update({"/ssh": ssh, "/1.0/ssh": ssh, "/linked": linked})
    if services.settings.authorities:  # `/<prefix>/...` of further issuing authorities (imports ACME's parts)
        from shared.api.authority_routes import authority_mounts

        mounts.update(authority_mounts(services))
    mounts["/admin/inventories"] = admin_inventories
    return mounts


def acme_direct(environ: dict[str, Any], services: Services, tail: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """ACME straight from the WSGI environ (`cirrus up`'s loop): no Werkzeug request or response."""
    from shared.api.acme_mount import acme_environ

    return acme_environ(environ, services, tail)


def default_direct_mounts(services: Services) -> dict[str, DirectMount]:
    """The mounts `cirrus up` answers straight from the environ (the same paths as in `default_mounts`)."""
    return {"/acme": acme_direct, "/2.0/acme": acme_direct}
