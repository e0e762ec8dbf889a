"""`/linked/v1/report`: where linked authorities report what they issued and revoked.

Authenticated per linked authority by its bearer token, or by the client certificate
pinned for it when the request came over mTLS to `cirrus up` (`shared.linked.registry`);
the body is strict JSON (`shared.strict_json`: no repeated members), bounded in size
and in items. The format is documented in docs/linked.md.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from shared.api.render import json_response
from shared.api.stepca import client_certificate
from shared.errors import BadRequest, PayloadTooLarge, Unauthorized
from shared.linked.ingest import MAX_BODY, Ingest, parse_report
from shared.linked.registry import LinkedAuthority, authenticate, authenticate_certificate
from shared.runtime import Services
from shared.strict_json import loads_strict


def linked(request: Request, services: Services, tail: str) -> Response:
    """Serve `POST /linked/v1/report`."""
    if tail != "/v1/report":
        return json_response({"status": 404, "message": "The requested resource could not be found."}, 404)
    if request.method != "POST":
        return json_response({"status": 405, "message": "method not allowed"}, 405, {"Allow": "POST"})
    link = _authenticate(request, services)
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge(f"request body larger than {MAX_BODY} bytes")
    data = request.stream.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise PayloadTooLarge(f"request body larger than {MAX_BODY} bytes")
    try:
        body = loads_strict(data)
    except ValueError as exc:  # StrictJSONError is one
        raise BadRequest("error decoding json") from exc
    if not isinstance(body, dict):
        raise BadRequest("error decoding json: expected an object")
    now = services.clock.now()
    items = parse_report(body, link, now=now)
    results = services.lazy("linked_ingest", lambda s: Ingest(store=s.store, sinks=s.sinks)).record(
        link, items, now=now
    )
    return json_response({"results": results})


def _authenticate(request: Request, services: Services) -> LinkedAuthority:
    """A bearer token if one is sent; else the mTLS client certificate the TLS server verified."""
    authorization = request.headers.get("Authorization", "")
    certificate = client_certificate(request)
    if authorization or certificate is None:
        return authenticate(services.store, authorization)
    link = authenticate_certificate(services.store, certificate)
    # The TLS server checked its chain and validity; a revoked client certificate stands for nobody.
    if services.store.get_revocation(str(certificate.serial_number)) is not None:
        raise Unauthorized("invalid or missing linked-authority token")
    return link
