"""Errors and JSON bodies, step-ca style.

One mapping from exceptions to responses: a `CAError` becomes
`{"status": N, "message": detail}` with its status; anything else becomes a
generic 500 whose details go only to the log (never a stack trace on the wire).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from shared.api.wsgi import wsgi_body
from shared.errors import CAError, Unavailable

log = logging.getLogger("cirrus.api")

INTERNAL = (
    "The certificate authority encountered an Internal Server Error. "
    "Please see the certificate authority logs for more info."
)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response."""
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def error_response(exc: BaseException) -> Response:
    """Map an exception to step-ca's error JSON."""
    if isinstance(exc, CAError):
        headers = {"Retry-After": "5"} if isinstance(exc, Unavailable) else None
        return json_response({"status": exc.status, "message": exc.detail}, exc.status, headers)
    log.error("unhandled error", exc_info=exc)
    return json_response({"status": 500, "message": INTERNAL}, 500)


def read_json_object(request: Request, *, max_bytes: int) -> dict[str, Any]:
    """Read a bounded JSON object body.

    Raises:
        PayloadTooLarge: body over `max_bytes`.
        BadRequest: not a JSON object.
    """
    # Through Werkzeug's stream, not `wsgi.input` directly: the Functions Framework
    # drains the body through that stream after the response, and a stream that did
    # not see our read then reports a client disconnect (a 500).
    return _json_object(request.content_length, request.stream.read, max_bytes)


def read_json_object_environ(environ: dict[str, Any], *, max_bytes: int) -> dict[str, Any]:
    """`read_json_object` straight from a WSGI environ (for `cirrus up`'s loop, not the Functions)."""
    length, read = wsgi_body(environ)
    return _json_object(length, read, max_bytes)


def _json_object(length: int | None, read: Callable[[int], bytes], max_bytes: int) -> dict[str, Any]:
    from shared.errors import BadRequest, PayloadTooLarge
    from shared.strict_json import StrictJSONError, loads_strict

    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"request body larger than {max_bytes} bytes")
    data = read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"request body larger than {max_bytes} bytes")
    try:
        body = loads_strict(data)  # I-JSON, as for tokens and ACME (issue 12, item 6)
    except StrictJSONError as exc:
        raise BadRequest(f"error decoding json: {exc}") from exc
    except ValueError as exc:  # not JSON, not UTF-8
        raise BadRequest("error decoding json") from exc
    if not isinstance(body, dict):
        raise BadRequest("error decoding json: expected an object")
    return body
