"""Cloud Functions entry points: each decodes, calls one handler, encodes."""

import functions_framework

from shared.api import functions as handlers


@functions_framework.http
def ca_api(request):  # type: ignore[no-untyped-def]
    """step-ca's HTTP API."""
    return handlers.ca_api(request)


@functions_framework.http
def issuer(request):  # type: ignore[no-untyped-def]
    """Private: signs for ca_api and acme (the only holder of the KMS signing permission)."""
    return handlers.issuer(request)


@functions_framework.http
def acme(request):  # type: ignore[no-untyped-def]
    """RFC 8555 ACME under /acme/{provisioner}/."""
    return handlers.acme(request)


@functions_framework.http
def ocsp(request):  # type: ignore[no-untyped-def]
    """OCSP responder fed by the published CRLs."""
    return handlers.ocsp(request)


@functions_framework.http
def dashboard(request):  # type: ignore[no-untyped-def]
    """The operator dashboard (IAM-authenticated users, then the dashboard's own sign-in)."""
    return handlers.dashboard(request)


@functions_framework.cloud_event
def crl_publish(cloud_event):  # type: ignore[no-untyped-def]
    """Scheduled CRL publication (Cloud Scheduler -> Pub/Sub)."""
    handlers.crl_publish(cloud_event)


@functions_framework.cloud_event
def sweep(cloud_event):  # type: ignore[no-untyped-def]
    """Scheduled housekeeping (Cloud Scheduler -> Pub/Sub)."""
    handlers.sweep(cloud_event)
