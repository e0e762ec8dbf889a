"""step-ca's HTTP API (reference s.1): routes, bodies and status codes.

Mounted at `/` and `/1.0`. Success codes mimic step-ca exactly, including its
201 for `/roots`, `/intermediates` and `/federation`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from shared import __version__
from shared.api.render import json_response, read_json_object, read_json_object_environ
from shared.authorities import AuthorityScope
from shared.authority import Issued
from shared.decimal_text import parse_decimal
from shared.errors import BadRequest, NotFound, NotImplementedYet, PayloadTooLarge, Unauthorized
from shared.groupcommit import ENVIRON_KEY
from shared.runtime import Services

TLS_OPTIONS = {
    "cipherSuites": [
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ],
    "minVersion": 1.2,
    "maxVersion": 1.3,
    "renegotiation": False,
}

_ROUTES = [
    ("/health", "health", ["GET"]),
    ("/version", "version", ["GET"]),
    ("/root/<sha>", "root", ["GET"]),
    ("/roots", "roots", ["GET"]),
    ("/roots.pem", "roots_pem", ["GET"]),
    ("/intermediates", "intermediates", ["GET"]),
    ("/intermediates.pem", "intermediates_pem", ["GET"]),
    ("/federation", "federation", ["GET"]),
    ("/provisioners", "provisioners", ["GET"]),
    ("/provisioners/<kid>/encrypted-key", "encrypted_key", ["GET"]),
    ("/sign", "sign", ["POST"]),
    ("/renew", "renew", ["POST"]),
    ("/re-sign", "renew", ["POST"]),
    ("/rekey", "rekey", ["POST"]),
    ("/revoke", "revoke", ["POST"]),
]


@functools.cache
def url_map() -> Map:
    """Every route, for the paths `_STATIC` does not answer (parameters, a wrong method), built on first use.

    Werkzeug compiles two URL builders per rule when a Map is made (about 40 ms for these 30 rules
    on a loaded 2-core machine), which a cold instance's first `/sign`, answered from `_STATIC`,
    never needs.
    """
    rules = [Rule(prefix + path, endpoint=name, methods=methods) for prefix in ("", "/1.0")
             for path, name, methods in _ROUTES]  # fmt: skip
    return Map(rules, strict_slashes=False)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign_response(issued: Issued) -> Response:
    """step-ca's SignResponse (201)."""
    return Response(sign_response_body(issued), status=201, mimetype="application/json")


def sign_response_body(issued: Issued) -> bytes:
    """SignResponse's JSON.

    The same compact JSON `json_response` writes, assembled from the leaf and
    the authority's chain encoded once (`_chain_json`): every answer repeats
    the intermediates, and escaping their PEM again cost more than the rest.
    """
    chain = issued.pem_chain()
    leaf = json.dumps(chain[0])
    ca, tail = _chain_json(tuple(chain[1:]))
    return f'{{"crt":{leaf},"ca":{ca},"certChain":[{leaf}{tail}],"tlsOptions":{_TLS_OPTIONS_JSON}}}'.encode()


_TLS_OPTIONS_JSON = json.dumps(TLS_OPTIONS, separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def _chain_json(intermediates: tuple[str, ...]) -> tuple[str, str]:
    """(`ca` value, `,`-prefixed rest of `certChain`) as JSON, for one authority's chain."""
    ca = json.dumps(intermediates[0]) if intermediates else "null"
    return ca, "".join("," + json.dumps(p) for p in intermediates)


def client_certificate(request: Request) -> x509.Certificate | None:
    """The mTLS client certificate the local TLS server verified, if any.

    Only the server's own TLS layer sets `SSL_CLIENT_CERT`; request headers are
    never trusted for this.
    """
    pem = request.environ.get("SSL_CLIENT_CERT")
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None


# Paths without parameters, answered without the router (the hot ones: /sign, /renew).
_STATIC: dict[str, tuple[str, frozenset[str]]] = {
    prefix + path: (name, frozenset(methods))
    for prefix in ("", "/1.0")
    for path, name, methods in _ROUTES
    if "<" not in path
}


class StepCAAPI:
    """Dispatches step-ca routes to the services."""

    def __init__(self, services: Services, scope: AuthorityScope | None = None) -> None:
        """`scope`: the authority a prefix mount serves (shared.authorities); default: chosen per request."""
        self._s = services
        self._scope = scope or AuthorityScope(services)
        self._max = services.settings.max_body_bytes

    def dispatch(self, request: Request, path: str) -> Response | None:
        """Serve `path` if it is a step-ca route; None if it is not one."""
        static = _STATIC.get(path)
        if static is not None and request.method in static[1]:
            handler: Callable[..., Response] = getattr(self, f"_{static[0]}")
            return handler(request)
        adapter = url_map().bind("ca", path_info=path)
        try:
            endpoint, args = adapter.match(path, method=request.method)
        except MethodNotAllowed:
            return json_response({"status": 405, "message": "method not allowed"}, 405)
        except HTTPException:
            return None
        handler = getattr(self, f"_{endpoint}")
        return handler(request, **args)

    # ------------------------------------------------------------ reads
    def _health(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    def _version(self, request: Request) -> Response:
        return json_response({"version": __version__})

    def _root(self, request: Request, sha: str) -> Response:
        want = sha.replace("-", "").replace(":", "").lower()
        for cert in self._s.roots:
            if hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest() == want:
                return json_response({"ca": _pem(cert)})
        raise NotFound(f"root with fingerprint {want[:64]} was not found")

    def _roots(self, request: Request) -> Response:
        return json_response({"crts": [_pem(c) for c in self._s.roots]}, 201)

    def _roots_pem(self, request: Request) -> Response:
        return Response("".join(_pem(c) for c in self._s.roots), mimetype="application/x-pem-file")

    def _intermediates(self, request: Request) -> Response:
        if not self._scope.intermediates:
            raise NotImplementedYet("no intermediates configured")
        return json_response({"crts": [_pem(c) for c in self._scope.intermediates]}, 201)

    def _intermediates_pem(self, request: Request) -> Response:
        return Response("".join(_pem(c) for c in self._scope.intermediates), mimetype="application/x-pem-file")

    def _federation(self, request: Request) -> Response:
        return json_response({"crts": [_pem(c) for c in self._s.roots]}, 201)

    def _provisioners(self, request: Request) -> Response:
        cursor = request.args.get("cursor", "")
        raw_limit = request.args.get("limit", "")
        limit = 20
        if raw_limit:
            try:  # ASCII digits only: "²" passes isdigit() and then fails int() (a 500)
                limit = min(max(parse_decimal(raw_limit, max_digits=6), 1), 100)
            except ValueError as exc:
                raise BadRequest("limit must be an integer") from exc
        items, next_cursor = self._scope.provisioners.page(cursor, limit)
        return json_response({"provisioners": items, "nextCursor": next_cursor})

    def _encrypted_key(self, request: Request, kid: str) -> Response:
        p = self._scope.provisioners.jwk_by_kid(kid)
        if p is None or p.encrypted_key is None:
            raise NotFound("encrypted key not found")
        return json_response({"key": p.encrypted_key})

    # ----------------------------------------------------------- writes
    def _forward(self, request: Request) -> Response | None:
        """In the registration-authority shape, hand a signing request to the issuer as is."""
        link = self._s.issuer_link
        if link is None:
            return None
        if request.content_length is not None and request.content_length > self._max:
            raise PayloadTooLarge(f"request body larger than {self._max} bytes")
        body = request.stream.read(self._max + 1)
        if len(body) > self._max:
            raise PayloadTooLarge(f"request body larger than {self._max} bytes")
        headers = {}
        if request.headers.get("Authorization"):
            # The client's renew token travels in X-Cirrus-Authorization: Authorization carries ours.
            headers["X-Cirrus-Authorization"] = request.headers["Authorization"]
        status, _, payload = link.call(request.path, body, headers=headers)
        return Response(payload, status=status, mimetype="application/json")

    def _sign(self, request: Request) -> Response:
        forwarded = self._forward(request)
        if forwarded is not None:
            return forwarded
        body = read_json_object(request, max_bytes=self._max)
        return sign_response(self._issue(body, request.environ.get(ENVIRON_KEY)))

    def sign_environ(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """`POST /sign` straight from a WSGI environ (`cirrus up`; not in forwarding mode)."""
        body = read_json_object_environ(environ, max_bytes=self._max)
        payload = sign_response_body(self._issue(body, environ.get(ENVIRON_KEY)))
        return 201, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))], payload

    def _issue(self, body: dict[str, Any], group: Any) -> Issued:
        return self._scope.for_token(body.get("ott")).sign(
            csr_pem=body.get("csr"),
            ott=body.get("ott"),
            not_before=body.get("notBefore"),
            not_after=body.get("notAfter"),
            group=group,
            template_data=body.get("templateData"),
        )

    def _renew(self, request: Request) -> Response:
        cert = client_certificate(request)
        if cert is not None and self._s.issuer_link is None:
            renewer = self._scope.for_certificate(cert)
            return sign_response(renewer.renew(certificate=cert, group=request.environ.get(ENVIRON_KEY)))
        forwarded = self._forward(request)
        if forwarded is not None:
            return forwarded
        token = _bearer(request)
        if token is None:
            raise Unauthorized("missing client certificate or bearer token")
        from shared.provisioners.renew_token import verify_renew_token  # renewals only, not a cold /sign

        leaf, replay = verify_renew_token(
            token, roots=self._s.roots, audiences=self._scope.audiences, now=self._s.clock.now()
        )
        return sign_response(
            self._scope.for_certificate(leaf).renew(
                certificate=leaf, replay=replay, group=request.environ.get(ENVIRON_KEY)
            )
        )

    def _rekey(self, request: Request) -> Response:
        cert = client_certificate(request)
        if cert is None:
            raise Unauthorized("missing client certificate")
        body = read_json_object(request, max_bytes=self._max)
        return sign_response(
            self._scope.for_certificate(cert).rekey(
                certificate=cert, csr_pem=body.get("csr"), group=request.environ.get(ENVIRON_KEY)
            )
        )

    def _revoke(self, request: Request) -> Response:
        body: dict[str, Any] = read_json_object(request, max_bytes=self._max)
        authorization = request.headers.get("Authorization")
        delegate = None
        from shared.linked.revoke_tokens import authenticate_revoke_token, is_revoke_token  # /revoke only

        if is_revoke_token(authorization):  # a central Cirrus revoking what this linked one issued
            delegate = authenticate_revoke_token(self._s.store, str(authorization))
        self._scope.revoker(body.get("ott"), client_certificate(request)).revoke_request(
            serial=body.get("serial"),
            ott=body.get("ott"),
            reason_code=body.get("reasonCode"),
            reason=body.get("reason"),
            passive=body.get("passive"),
            client_certificate=client_certificate(request),
            delegate=delegate,
        )
        if self._s.settings.crl.publish_on_revoke:
            _publish_now(self._s)
        return json_response({"status": "ok"})


def _publish_now(services: Services) -> None:
    """`crl.publishOnRevoke`: republish right away so CRLs and OCSP show the revocation.

    The revocation is already durable; a failed publication is logged, not returned, and
    the next scheduled run catches up.
    """
    import logging

    from shared.cli.crl import run_publish

    try:
        run_publish(services)
    except Exception:
        logging.getLogger("cirrus.crl").warning("publish-on-revoke failed; the schedule will retry", exc_info=True)


def _bearer(request: Request) -> str | None:
    # Behind the registration authority the client's token arrives in X-Cirrus-Authorization,
    # because Authorization carries the platform's ID token for the issuer function.
    header = request.headers.get("X-Cirrus-Authorization") or request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
        return token or None
    return None
