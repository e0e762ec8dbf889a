"""Calling one webhook: step-ca's headers, a bounded time and a bounded answer.

Headers as step-ca sends them: `Content-Type: application/json`, `X-Smallstep-Signature` (hex
HMAC-SHA256 of the exact body bytes, keyed with the base64-decoded secret), `X-Smallstep-Webhook-ID`,
`X-Request-Id`, and `Authorization` (Bearer or Basic) when configured. Like step-ca: one retry
after a pause on a transport error or an HTTP 5xx, none after a timeout.

What the client is told (the reference's "Bad input": a clear 4xx, and 503 only for unavailability):
- unreachable, timed out, or still 5xx after the retry: 503 (`Unavailable`), nothing signed;
- a redirect, any other non-2xx, an answer over `MAX_ANSWER_BYTES`, or one that is not step-ca's
  `{"allow": bool, "data": ...}` JSON: 403 (`Forbidden`), as step-ca refuses every webhook failure;
- `allow: false`: 403 with the hook's `error.message` (printable, shortened) or step-ca's
  "webhook server did not allow request".
No message carries the URL, a secret or the answer's raw bytes.

Why `http.client` and not `urllib.request` or a client library: the whole call, TLS handshake,
headers and a slowly dripped body included, must end by the deadline. A socket timeout only
bounds each read, so a watchdog shuts the socket down when the deadline passes
(`shared.webhooks.watchdog`, shared with `bounded_post`); `http.client` gives that socket, never
follows redirects and never reads proxy settings from the environment. The host name is resolved
before connecting, also bounded by the deadline (`shared.webhooks.resolve`).

TLS client authentication: a server that asks is shown the authority's client certificate
(`shared.webhooks.identity`) unless the hook sets `disableTLSClientAuth`, as step-ca does.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import time
import urllib.parse
import uuid
from base64 import b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.errors import Forbidden, Unavailable
from shared.strict_json import loads_strict
from shared.templates.errors import TemplateError
from shared.templates.values import normalize
from shared.webhooks.config import Webhook
from shared.webhooks.identity import ClientIdentity
from shared.webhooks.resolve import (
    PinnedHTTPConnection,
    PinnedHTTPSConnection,
    ResolutionFailed,
    ResolutionTimedOut,
    Resolve,
    resolve_within,
    system_resolve,
)
from shared.webhooks.watchdog import Watchdog

MAX_ANSWER_BYTES = 64 * 1024
SIGNATURE_HEADER = "X-Smallstep-Signature"
ID_HEADER = "X-Smallstep-Webhook-ID"
DENIED = "webhook server did not allow request"
USER_AGENT = "cirrus-ca-webhook/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """An allowing answer's `data` (any JSON)."""

    data: Any


def signature(secret: bytes, body: bytes) -> str:
    """`X-Smallstep-Signature`: hex HMAC-SHA256 of the body."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


class _Expired(Exception):
    """The deadline passed during the call."""


class _Transport(Exception):
    """Connecting, sending or reading failed (worth one retry)."""


class WebhookClient:
    """POSTs request bodies to webhooks; TLS trusts the system roots and the CA's own roots, and
    shows `identity`'s client certificate (none without one) to a server that asks."""

    def __init__(
        self,
        *,
        roots: Sequence[x509.Certificate] = (),
        retry_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        resolve: Resolve = system_resolve,
        identity: ClientIdentity | None = None,
    ) -> None:
        self._roots_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in roots)
        self._retry_delay = retry_delay
        self._clock = clock
        self._resolve = resolve
        self._identity = identity
        self._context: ssl.SSLContext | None = None

    def _fresh_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self._roots_pem:
            context.load_verify_locations(cadata=self._roots_pem)
        return context

    def _tls(self, hook: Webhook) -> ssl.SSLContext:
        """The context for `hook`: with the client certificate unless the hook disables it.

        Raises:
            Unavailable: the client certificate could not be made (503).
        """
        if self._identity is not None and not hook.disable_tls_client_auth:
            try:
                return self._identity.context(self._fresh_context)
            except Unavailable:
                raise Unavailable(f"webhook {hook.name}: no client certificate could be made; retry later") from None
        if self._context is None:  # built on first https call: most issuances never need it
            self._context = self._fresh_context()
        return self._context

    def call(self, hook: Webhook, url: str, body: bytes, *, request_id: str = "") -> Answer:
        """Send `body` to `hook` at `url` (already rendered and checked) and read its answer.

        Raises:
            Unavailable: unreachable, timed out, or 5xx after the retry (503).
            Forbidden: denied, or an answer that is not step-ca's (403).
        """
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature(hook.secret, body),
            ID_HEADER: hook.id,
            "X-Request-Id": request_id or str(uuid.uuid4()),
        }
        if hook.bearer_token:
            headers["Authorization"] = f"Bearer {hook.bearer_token}"
        elif hook.basic_auth is not None:
            user, password = hook.basic_auth
            headers["Authorization"] = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
        deadline = self._clock() + hook.timeout
        retries = 1
        while True:
            try:
                status, answer = self._post(hook, url, body, headers, deadline)
            except _Expired:
                raise Unavailable(f"webhook {hook.name}: timed out") from None
            except _Transport:
                if retries and self._clock() + self._retry_delay < deadline:
                    retries -= 1
                    time.sleep(self._retry_delay)
                    continue
                raise Unavailable(f"webhook {hook.name}: unreachable") from None
            if status >= 500 and retries and self._clock() + self._retry_delay < deadline:
                retries -= 1
                time.sleep(self._retry_delay)
                continue
            return _read_answer(hook.name, status, answer)

    def _post(self, hook: Webhook, url: str, body: bytes, headers: dict[str, str],
              deadline: float) -> tuple[int, bytes | None]:  # fmt: skip
        """(status, body or None when longer than the limit); raises `_Expired` or `_Transport`."""
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""  # without brackets: with an explicit port, http.client takes an IPv6 host as is
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        context = self._tls(hook) if parts.scheme == "https" else None  # may cost a signature: before the clock reads
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Expired
        try:  # resolution inside the deadline too (shared.webhooks.resolve)
            addresses = resolve_within(host, port, remaining, self._resolve)
        except ResolutionTimedOut:
            raise _Expired from None
        except ResolutionFailed:
            raise _Transport from None
        if deadline - self._clock() <= 0:
            raise _Expired

        def left() -> float:
            return deadline - self._clock()

        conn: http.client.HTTPConnection
        if context is not None:
            conn = PinnedHTTPSConnection(host, port, addresses=addresses, remaining=left, context=context)
        else:
            conn = PinnedHTTPConnection(host, port, addresses=addresses, remaining=left)
        try:
            with Watchdog(conn, left()) as watchdog:  # the whole exchange ends by the deadline
                try:
                    conn.request("POST", target, body=body, headers=headers)
                    response = conn.getresponse()
                    data = _read_bounded(response)
                    status = response.status
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    if watchdog.expired or isinstance(exc, TimeoutError | socket.timeout):
                        raise _Expired from None
                    raise _Transport from None
        finally:
            conn.close()
        if watchdog.expired:
            raise _Expired
        return status, data


def _read_bounded(response: http.client.HTTPResponse) -> bytes | None:
    """The body, None when over the limit; a body shorter than its Content-Length is a transport failure."""
    declared = response.length  # http.client's parse of Content-Length (None: chunked or until close)
    if declared is not None and declared > MAX_ANSWER_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(8192)
        if not chunk:
            if response.length:  # read(amt) does not raise on a cut-off body; the remainder is still owed
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)


def _read_answer(name: str, status: int, body: bytes | None) -> Answer:
    if 300 <= status < 400:
        raise Forbidden(f"webhook {name}: answered with a redirect")
    if status >= 500:
        raise Unavailable(f"webhook {name}: answered HTTP {status}")
    if not 200 <= status < 300:
        raise Forbidden(f"webhook {name}: answered HTTP {status}")
    if body is None:
        raise Forbidden(f"webhook {name}: answer larger than {MAX_ANSWER_BYTES} bytes")
    try:
        doc = loads_strict(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("allow"), bool):
            raise ValueError("not step-ca's answer")
        data = doc.get("data")
        normalize(data)  # templates must be able to hold it: bounded depth, string keys
    except (ValueError, UnicodeDecodeError, TemplateError, RecursionError):
        raise Forbidden(f"webhook {name}: answer is not a webhook response") from None
    if not doc["allow"]:
        raise Forbidden(_denied(doc.get("error")))
    return Answer(data)


def _denied(error: Any) -> str:
    """step-ca's message for a refusal: the hook's `error.message (code)`, made safe to show."""
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return DENIED
    message = _printable(error["message"], 200)
    code = error.get("code")
    if isinstance(code, str) and code:
        message = f"{message} ({_printable(code, 64)})"
    return message or DENIED


def _printable(text: str, limit: int) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:limit])

