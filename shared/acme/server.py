"""The ACME server: routing, JWS authentication, response headers.

`ACMEServer.handle(request, provisioner, path)` serves everything under
`/acme/{provisioner}` (and step-ca's `/2.0/acme/{provisioner}`): the caller
strips the mount and passes the rest as `path`. Every response carries a
fresh `Replay-Nonce` and `Link: <directory>;rel="index"`; every client error
is a problem document; anything unexpected is logged and answered with a
generic `serverInternal`, never a traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from werkzeug.sansio.utils import get_current_url, get_host
from werkzeug.wrappers import Request, Response

from shared.acme import accounts, authorizations, certificates, orders, renewal
from shared.acme.auth import authenticate
from shared.acme.config import ACMEProvisionerConfig
from shared.acme.context import ACMERequest, Ctx, Reply, Services, Verified
from shared.acme.finalize import Finalizer, Revoker
from shared.acme.nonce_ledger import SharedNonceLedger
from shared.acme.nonces import NonceService
from shared.acme.problems import ACMEProblem, from_ca_error
from shared.acme.repo import ORDERS, Repo
from shared.acme.validations import ValidationRunner, issuance_executor
from shared.api.wsgi import after_response, wsgi_body, wsgi_path
from shared.clock import Clock
from shared.errors import CAError
from shared.store.base import CertificateReader, DocumentStore, RevocationReader, TokenLedger

log = logging.getLogger(__name__)

JOSE = "application/jose+json"
DEFAULT_MAX_BODY = 64 * 1024

Handler = Callable[[Services, Ctx, Verified, list[str]], Reply]


@functools.lru_cache(maxsize=256)
def _origin(scheme: str, host: str) -> str:
    """`scheme://host` as Werkzeug's `host_url` builds it (IDNA, IPv6 brackets), once per host.

    Every response links back to the server, and Werkzeug's URL building is a
    visible share of a small ACME request; the host (already validated by
    Werkzeug's `get_host`) varies across a handful of values at most.
    """
    return get_current_url(scheme, host).rstrip("/")


@functools.lru_cache(maxsize=64)
def _quoted_mount(mount: str) -> str:
    return quote(mount, safe="/%")


@functools.lru_cache(maxsize=256)
def _host_origin(scheme: str, host_header: str | None, server_name: str, server_port: str) -> str:
    """`scheme://host` from a WSGI environ's parts, validated and built as Werkzeug's Request does."""
    return _origin(scheme, get_host(scheme, host_header, (server_name, int(server_port) if server_port else None)))


def _environ_origin(environ: dict[str, Any]) -> str:
    return _host_origin(
        str(environ.get("wsgi.url_scheme", "http")),
        environ.get("HTTP_HOST"),
        str(environ.get("SERVER_NAME", "")),
        str(environ.get("SERVER_PORT", "")),
    )


# One Host value (RFC 9110 s.7.2, RFC 3986 s.3.2.2): a reg-name or a bracketed IPv6 literal, then an optional
# port of ASCII digits. Two Host headers reach us joined by a comma and fail this; Werkzeug's `get_host`
# answers "" for most bad values, which would make every URL in the answer `https:/acme/...`.
_HOST = re.compile(
    r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63})*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?"
)
# A header field name is a token (RFC 9110 s.5.1); the WSGI key is it upper-cased with "-" as "_".
_HEADER_KEY = re.compile(r"HTTP_[A-Za-z0-9!#$%&'*+.^_`|~]+")


def _boundary_problem(environ: Mapping[str, Any]) -> str | None:
    """Why a request's headers are refused before anything reads them (None: they pass).

    Checked here, at the ACME boundary, because the Functions path (Werkzeug)
    and `cirrus up` (its own HTTP server) parse headers differently.
    """
    for key in environ:
        if isinstance(key, str) and key.startswith("HTTP_") and not _HEADER_KEY.fullmatch(key):
            return "invalid header field name"
    host = environ.get("HTTP_HOST")
    if host is None:
        return None  # HTTP/1.0: the server's own name is used
    if not isinstance(host, str) or not _HOST.fullmatch(host):
        return "invalid or repeated Host header"
    port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host.rpartition("]")[2] else ""
    if port and int(port) > 65535:
        return "invalid Host port"
    return None


def _route(segments: list[str]) -> tuple[str, Handler] | None:
    """Map a POST path to (key mode, handler)."""
    n, head = len(segments), segments[0] if segments else ""
    table: dict[tuple[str, int], tuple[str, Handler]] = {
        ("new-account", 1): ("jwk", lambda s, c, v, a: accounts.new_account(s, c, v)),
        ("account", 2): ("kid", lambda s, c, v, a: accounts.update_account(s, c, v, a[1])),
        ("key-change", 1): ("kid", lambda s, c, v, a: accounts.key_change(s, c, v)),
        ("new-order", 1): ("kid", lambda s, c, v, a: orders.new_order(s, c, v)),
        ("order", 2): ("kid", lambda s, c, v, a: orders.get_order(s, c, v, a[1])),
        ("authz", 2): ("kid", lambda s, c, v, a: authorizations.get_authz(s, c, v, a[1])),
        ("challenge", 3): ("kid", lambda s, c, v, a: authorizations.respond_challenge(s, c, v, a[1], a[2])),
        ("certificate", 2): ("kid", lambda s, c, v, a: certificates.download(s, c, v, a[1], None)),
        ("certificate", 3): ("kid", lambda s, c, v, a: certificates.download(s, c, v, a[1], a[2])),
        ("revoke-cert", 1): ("either", lambda s, c, v, a: certificates.revoke(s, c, v)),
    }
    if n == 3 and head == "account" and segments[2] == "orders":
        return "kid", lambda s, c, v, a: accounts.account_orders(s, c, v, a[1])
    if n == 3 and head == "order" and segments[2] == "finalize":
        return "kid", lambda s, c, v, a: certificates.finalize(s, c, v, a[1])
    return table.get((head, n))


def _post_as_get_only(segments: list[str]) -> bool:
    """Resources only read (RFC 8555 s.6.3, 7.1): a POST to them with a payload is malformed, not a read."""
    n, head = len(segments), segments[0] if segments else ""
    return (
        (head == "order" and n == 2)
        or (head == "certificate" and n in (2, 3))
        or (head == "account" and n == 3 and segments[2] == "orders")
    )


def _target(segments: list[str]) -> tuple[str, str] | None:
    """The document a POST's URL names (read together with its account), if any."""
    n, head = len(segments), segments[0] if segments else ""
    if head in ("authz", "challenge") and n >= 2:
        ref = authorizations.authz_ref(segments[1])
        return ref.collection, ref.doc_id
    if head in ("order", "certificate") and n >= 2:
        return ORDERS, segments[1]
    return None


class ACMEServer:
    """RFC 8555 over Werkzeug, stateless between requests."""

    def __init__(
        self,
        *,
        clock: Clock,
        documents: DocumentStore,
        ledger: TokenLedger,
        provisioners: Mapping[str, ACMEProvisionerConfig],
        finalizer: Finalizer,
        revoker: Revoker,
        certificates: CertificateReader,
        nonce_key: bytes,
        revocations: RevocationReader | None = None,
        external_url: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        nonce_lifetime: dt.timedelta = dt.timedelta(minutes=30),
        nonce_ledger: SharedNonceLedger | None = None,
        validation_threads: int = 4,
    ) -> None:
        self._svc = Services(
            clock=clock,
            repo=Repo(documents),
            nonces=NonceService(
                key=nonce_key, ledger=ledger, clock=clock, lifetime=nonce_lifetime, shared=nonce_ledger
            ),
            finalizer=finalizer,
            revoker=revoker,
            certificates=certificates,
            revocations=revocations,
            validations=ValidationRunner(validation_threads),
            issuance=issuance_executor(),
        )
        self._provisioners = dict(provisioners)
        self._external_url = external_url.rstrip("/") if external_url else None
        self._max_body = max_body

    # ------------------------------------------------------------------ entry

    def handle(self, request: Request, provisioner: str, path: str) -> Response:
        """Serve one request under the provisioner's ACME mount (Werkzeug in, Werkzeug out)."""
        problem = _boundary_problem(request.environ)
        view = ACMERequest(
            method=request.method,
            path=request.path,
            origin="" if problem else _origin(request.scheme, request.host),
            mimetype=request.mimetype,
            content_length=request.content_length,
            read=request.stream.read,  # the Functions Framework drains the body through this stream
            after_response=after_response(request.environ),
            remote_addr=request.remote_addr or "",
            forwarded_for=str(request.environ.get("HTTP_X_FORWARDED_FOR", "")),
            refusal=problem,
        )
        status, headers, data = self.serve(view, provisioner, path)
        response = Response(data, status=status, headers=headers)
        if not any(k == "Content-Type" for k, _ in headers):
            del response.headers["Content-Type"]  # Werkzeug's text/plain default, on an empty body
        return response

    def handle_environ(
        self, environ: dict[str, Any], provisioner: str, path: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The same straight from a WSGI environ, for `cirrus up`'s loop (no Werkzeug objects)."""
        length, read = wsgi_body(environ)
        problem = _boundary_problem(environ)
        view = ACMERequest(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=wsgi_path(environ),
            origin="" if problem else _environ_origin(environ),
            remote_addr=str(environ.get("REMOTE_ADDR") or ""),
            forwarded_for=str(environ.get("HTTP_X_FORWARDED_FOR", "")),
            refusal=problem,
            mimetype=str(environ.get("CONTENT_TYPE", "")).partition(";")[0].strip().lower(),
            content_length=length,
            read=read,
            after_response=after_response(environ),
        )
        return self.serve(view, provisioner, path)

    def serve(self, request: ACMERequest, provisioner: str, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """`(status, headers, body)` for one request under the provisioner's ACME mount."""
        path = "/" + path.lstrip("/")
        full = request.path
        mount = full[: len(full) - len(path)] if full.endswith(path) else f"/acme/{provisioner}"
        origin = self._external_url or request.origin
        prefix = _quoted_mount(mount)
        index = origin + prefix + "/directory"
        try:
            if request.refusal is not None:
                raise ACMEProblem("malformed", request.refusal, status=400)
            prov = self._provisioners.get(provisioner)
            if prov is None:
                raise ACMEProblem("malformed", "no such ACME provisioner", status=404)
            ctx = Ctx(request=request, prov=prov, origin=origin, prefix=prefix)
            reply = self._dispatch(ctx, [s for s in path.split("/") if s])
        except ACMEProblem as p:
            reply = self._problem(p)
        except CAError as err:
            reply = self._problem(from_ca_error(err))
        except Exception:
            log.exception("ACME request failed: %s %s", request.method, path)
            reply = self._problem(ACMEProblem("serverInternal", "the server experienced an internal error"))
        return self._render(request.method, reply, index)

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _problem(p: ACMEProblem) -> Reply:
        return Reply(p.status, p.to_json(), dict(p.headers), content_type="application/problem+json")

    def _render(self, method: str, reply: Reply, index: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if isinstance(reply.body, bytes):
            data = reply.body
        elif isinstance(reply.body, str):
            data = reply.body.encode("utf-8")
        elif reply.body is None:
            data = b""
        else:
            data = json.dumps(reply.body, separators=(",", ":")).encode("utf-8")
        headers = [("Content-Type", reply.content_type)] if data else []
        headers.extend((k, v) for k, v in reply.headers.items() if k != "Cache-Control")
        headers.append(("Replay-Nonce", self._svc.nonces.issue()))
        headers.append(("Cache-Control", reply.headers.get("Cache-Control", "no-store")))
        headers.append(("Link", f'<{index}>;rel="index"'))
        headers.extend(("Link", link) for link in reply.links)
        if method == "HEAD":
            data = b""
        headers.append(("Content-Length", str(len(data))))
        return reply.status, headers, data

    def _dispatch(self, ctx: Ctx, segments: list[str]) -> Reply:
        method = ctx.request.method
        head = segments[0] if segments else ""
        if head == "directory" and len(segments) == 1:
            self._allow(method, ("GET", "HEAD"))
            return Reply(200, self._directory(ctx))
        if head == "new-nonce" and len(segments) == 1:
            self._allow(method, ("GET", "HEAD"))
            return Reply(204 if method == "GET" else 200, None)
        if head == "renewal-info" and len(segments) == 2:
            self._allow(method, ("GET",))
            return renewal.renewal_info(self._svc, ctx, segments[1])
        route = _route(segments)
        if route is None:
            raise ACMEProblem("malformed", "resource not found", status=404)
        self._allow(method, ("POST",))
        if ctx.request.mimetype != JOSE:
            raise ACMEProblem("malformed", f"Content-Type must be {JOSE}", status=415)
        length = ctx.request.content_length
        if length is not None and length > self._max_body:
            raise ACMEProblem("malformed", "request body too large", status=413)
        body = ctx.request.read(self._max_body + 1)
        if len(body) > self._max_body:
            raise ACMEProblem("malformed", "request body too large", status=413)
        key_mode, handler = route
        # newOrder, finalize and a challenge validated after the answer spend their nonce in
        # their first document write (one transaction instead of two); whatever the handler
        # did not spend is spent here, answered or refused, and a replay is answered badNonce
        # either way. (A challenge validated before the answer spends it first, so a replay
        # cannot start a second validation.)
        defer = (
            head == "new-order"
            or (head == "order" and len(segments) == 3)
            or (head == "challenge" and ctx.after_response is not None)
        )
        verified = authenticate(
            self._svc, ctx, body, key_mode=key_mode, defer_nonce=defer, prefetch=_target(segments)
        )
        if _post_as_get_only(segments) and not verified.jws.is_post_as_get:
            if verified.nonce is not None:
                self._svc.nonces.spend(verified.nonce)
            raise ACMEProblem("malformed", "this resource is read with POST-as-GET: the payload must be empty")
        if verified.nonce is None:
            return handler(self._svc, ctx, verified, segments)
        try:
            reply = handler(self._svc, ctx, verified, segments)
        except Exception:
            self._svc.nonces.spend(verified.nonce)  # a replay's badNonce replaces the handler's error
            raise
        self._svc.nonces.spend(verified.nonce)
        return reply

    @staticmethod
    def _allow(method: str, allowed: tuple[str, ...]) -> None:
        if method not in allowed:
            raise ACMEProblem(
                "malformed",
                f"method {method} not allowed",
                status=405,
                headers={"Allow": ", ".join(allowed)},
            )

    @staticmethod
    def _directory(ctx: Ctx) -> dict[str, object]:
        prov = ctx.prov
        meta: dict[str, object] = {"externalAccountRequired": prov.require_eab}
        if prov.terms_of_service:
            meta["termsOfService"] = prov.terms_of_service
        if prov.website:
            meta["website"] = prov.website
        if prov.caa_identities:
            meta["caaIdentities"] = list(prov.caa_identities)
        return {
            "newNonce": ctx.url("new-nonce"),
            "newAccount": ctx.url("new-account"),
            "newOrder": ctx.url("new-order"),
            "revokeCert": ctx.url("revoke-cert"),
            "keyChange": ctx.url("key-change"),
            "renewalInfo": ctx.url("renewal-info"),
            "meta": meta,
        }
