"""Cloud Function handlers: decode -> instance services -> one call -> encode.

`functions/main.py` wraps each of these in a Functions Framework decorator.
Services are built from the environment once per instance, on first use
(`Settings.from_env`), and kept: a warm instance never rebuilds a client.

Every module `functions/main.py` loads is paid by every function's cold start,
so this one imports only Werkzeug's request types at its top: the step-ca app
(routing, the issuing pipeline, provisioners, templates), the composition root
and the OCSP or dashboard code are imported by the handler that serves them.
tests/functions/test_cold_imports.py holds each function to that.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from shared.api.app import CirrusApp, Mount
    from shared.runtime import Services

_lock = threading.Lock()
_instance: dict[str, Any] = {}


def services() -> Services:
    """This instance's services, built on first use."""
    s = _instance.get("services")
    if s is None:
        from shared.config import Settings
        from shared.runtime import build_services

        with _lock:
            s = _instance.get("services")
            if s is None:
                # Provisioners, policies and the revoker on first use: the responder never needs them.
                s = build_services(Settings.from_env(), deferred=True)
                _instance["services"] = s
    return s


def _cached_app(name: str, mounts: Callable[[Services], dict[str, Mount]]) -> CirrusApp:
    app = _instance.get(name)
    if app is None:
        s = services()
        with _lock:
            app = _instance.get(name)
            if app is None:
                from shared.api.app import CirrusApp

                app = CirrusApp(s, mounts=mounts(s))
                _instance[name] = app
    return app


def _app() -> CirrusApp:
    """The public app: step-ca API, ACME, OCSP, CRL."""
    from shared.api.mounts import default_mounts

    return _cached_app("app", default_mounts)


def _issuer_mounts(s: Services) -> dict[str, Mount]:
    from shared.api.acme_mount import internal_acme
    from shared.api.mounts import ssh

    return {"/internal/acme": internal_acme, "/ssh": ssh, "/1.0/ssh": ssh}


def _issuer_app() -> CirrusApp:
    """The private issuer's app: the signing routes and the internal ACME finalize route."""
    return _cached_app("issuer_app", _issuer_mounts)


def reset() -> None:
    """Forget the instance's services (tests switch configurations with it)."""
    with _lock:
        s = _instance.pop("services", None)
        _instance.clear()
    if s is not None:
        s.close()


def ca_api(request: Request) -> Response:
    """The step-ca API (`/`, `/1.0`), plus OCSP/CRL/ACME mounts where configured."""
    return _app().handle(request)


def issuer(request: Request) -> Response:
    """The private issuer: the only function holding the signing key's KMS permission.

    It serves the step-ca signing routes and `/internal/acme/issue` for the public
    functions, which forward to it when `CIRRUS_ISSUER_URL` is set.
    """
    return _issuer_app().handle(request)


def acme(request: Request) -> Response:
    """ACME (`/acme/{provisioner}/...`); the same app, so routing and errors stay in one place."""
    return _app().handle(request)


def ocsp(request: Request) -> Response:
    """The OCSP responder at any path of its function URL (`/`, `/ocsp`, or a GET `/<base64>`).

    Served without the step-ca app, so the function never imports the API routing.
    """
    from shared.api.mounts import ocsp as serve

    path = request.path
    tail = path[len("/ocsp"):] if path == "/ocsp" or path.startswith("/ocsp/") else path
    return serve(request, services(), "" if tail == "/" else tail)


def dashboard(request: Request) -> Response:
    """The operator dashboard, at the function URL's `/dashboard/...` (or its root).

    Served without the step-ca app: the function answers only dashboard pages.
    """
    from shared.dashboard.app import dashboard as serve

    path = request.path
    tail = path[len("/dashboard"):] if path == "/dashboard" or path.startswith("/dashboard/") else path
    return serve(request, services(), tail)


def crl_publish(event: Any) -> dict[str, Any]:
    """Scheduled CRL publication (Cloud Scheduler -> Pub/Sub -> this function)."""
    from shared.cli.crl import run_publish

    results = run_publish(services())
    return {"published": [r.blob_name for r in results if r.generation is not None]}


def sweep(event: Any) -> dict[str, int]:
    """Scheduled housekeeping: expiry alerts, event re-delivery, purging expired tokens and nonces."""
    s = services()
    now = s.clock.now()
    purged = s.store.purge_expired(now)  # one-time tokens and ACME nonce claims
    purge_documents = getattr(s.store, "purge_expired_documents", None)  # Firestore relies on TTL
    documents = int(purge_documents(now)) if purge_documents is not None else 0
    alerts = s.expiry_alerts()
    from shared.provisioners.changes import check_services

    changed = check_services(s) is not None  # a redeploy that changed the provisioners: one event
    redelivered = s.redeliver_events()  # after the alerts, so a failed alert is retried next sweep
    return {"purgedTokens": purged, "purgedDocuments": documents, "alerts": alerts, "redelivered": redelivered,
            "provisionersChanged": int(changed)}
