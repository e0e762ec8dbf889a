"""Framework-neutral HTTP handlers for `/ocsp` and `/crl`.

Each handler takes plain values (method, path after the mount point, body or
query) and returns `(status, headers, body)`, so the Werkzeug app, the `ocsp`
Cloud Function and a test's wsgiref server share them unchanged.

OCSP over HTTP (RFC 6960 appendix A, RFC 5019 s.5): POST with
`application/ocsp-request`, or GET with the base64 DER request in the path
(URL-escaped; URL-safe base64 and missing padding are accepted too). Every
OCSP outcome, errors included, is HTTP 200 with `application/ocsp-response`;
only a wrong HTTP method gets an HTTP error. Successful responses carry the
RFC 5019 caching headers (O5019-04) so a CDN can serve them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import logging
from email.utils import format_datetime
from urllib.parse import parse_qs, unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.blobs.base import BlobStore
from shared.clock import Clock
from shared.errors import BackendError
from shared.validation.ocsp import (
    INTERNAL_ERROR,
    MALFORMED,
    MAX_REQUEST_BYTES,
    OCSPAnswer,
    OCSPResponder,
)
from shared.validation.partition import blob_name, parse_blob_path

Response = tuple[int, dict[str, str], bytes]
OCSP_RESPONSE_TYPE = "application/ocsp-response"
_NO_STORE = "no-store"
_log = logging.getLogger(__name__)


def _http_date(t: dt.datetime) -> str:
    return format_datetime(t.astimezone(dt.UTC), usegmt=True)


def decode_get_path(path_tail: str) -> bytes | None:
    """The DER request carried in a GET path, or None if it is not base64."""
    text = unquote(path_tail.strip("/")).strip()
    if not text or len(text) > 4 * MAX_REQUEST_BYTES // 3 + 4:
        return None
    text = text.replace("-", "+").replace("_", "/").replace(" ", "+")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class OCSPEndpoint:
    """`handle_ocsp` bound to a responder and a clock."""

    def __init__(self, *, responder: OCSPResponder, clock: Clock) -> None:
        """Serve answers from `responder`; `clock` sets max-age."""
        self._responder = responder
        self._clock = clock

    def handle_ocsp(self, method: str, path_tail: str, body: bytes) -> Response:
        """Answer one HTTP request to the OCSP mount point."""
        method = method.upper()
        if method not in ("GET", "HEAD", "POST"):
            allow = {"Allow": "GET, POST", "Content-Type": "text/plain"}
            return 405, allow, b"method not allowed\n"
        request = body if method == "POST" else decode_get_path(path_tail)
        try:
            answer = MALFORMED if request is None else self._responder.respond(request)
        except Exception:  # an OCSP client gets an OCSP status, never an HTTP 500
            _log.exception("OCSP responder failed")
            answer = INTERNAL_ERROR
        headers = self._headers(answer)
        return 200, headers, b"" if method == "HEAD" else answer.der

    def _headers(self, answer: OCSPAnswer) -> dict[str, str]:
        headers = {"Content-Type": OCSP_RESPONSE_TYPE, "Content-Length": str(len(answer.der))}
        if answer.this_update is None or answer.next_update is None:
            headers["Cache-Control"] = _NO_STORE
            return headers
        if not answer.cacheable:  # nonce echoed: meaningful for this request only
            headers["Cache-Control"] = "private, " + _NO_STORE
            return headers
        max_age = max(0, int((answer.next_update - self._clock.now()).total_seconds()))
        headers.update(
            {
                "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate",
                "Last-Modified": _http_date(answer.this_update),
                "Expires": _http_date(answer.next_update),
                "ETag": '"' + hashlib.sha256(answer.der).hexdigest()[:32] + '"',
            }
        )
        return headers


class CRLEndpoint:
    """`handle_crl`: serves published CRLs from the blob store."""

    def __init__(
        self,
        *,
        blobs: BlobStore,
        clock: Clock,
        default_authority_id: str | None,
        cache_max_age: int = 3600,
    ) -> None:
        """Serve `crl/...` objects; bare `/crl` means the default authority's full CRL."""
        self._blobs = blobs
        self._clock = clock
        self._default = default_authority_id
        self._max_age = cache_max_age

    def handle_crl(self, method: str, path_tail: str, query: str = "") -> Response:
        """Answer `GET /crl[/<id>.crl | /<id>/<shard>.crl][?pem]`."""
        if method.upper() not in ("GET", "HEAD"):
            return 405, {"Allow": "GET", "Content-Type": "text/plain"}, b"method not allowed\n"
        tail = path_tail.strip("/")
        target: tuple[str, int | None] | None
        if not tail:
            target = (self._default, None) if self._default else None
        else:
            try:
                target = parse_blob_path(tail)
            except ValueError:
                return 400, {"Content-Type": "text/plain"}, b"bad request: invalid CRL shard\n"
        if target is None:
            return _not_found()
        try:
            blob = self._blobs.read(blob_name(target[0], target[1]))
        except BackendError:
            return 503, {"Content-Type": "text/plain", "Retry-After": "30"}, b"unavailable\n"
        if blob is None:
            return _not_found()
        try:
            crl = x509.load_der_x509_crl(blob.data)
        except ValueError:
            return 503, {"Content-Type": "text/plain", "Retry-After": "30"}, b"unavailable\n"
        pem = "pem" in parse_qs(query, keep_blank_values=True)
        if pem:
            body = crl.public_bytes(serialization.Encoding.PEM)
            content_type = "application/x-pem-file"
        else:
            body, content_type = blob.data, "application/pkix-crl"
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(len(body)),
            "ETag": f'"{blob.generation}{"p" if pem else ""}"',
            "Last-Modified": _http_date(crl.last_update_utc),
        }
        if crl.next_update_utc is not None:
            left = int((crl.next_update_utc - self._clock.now()).total_seconds())
            headers["Cache-Control"] = f"public, max-age={max(0, min(self._max_age, left))}"
            headers["Expires"] = _http_date(crl.next_update_utc)
        return 200, headers, b"" if method.upper() == "HEAD" else body


def _not_found() -> Response:
    return 404, {"Content-Type": "text/plain"}, b"no such CRL\n"
