"""One POST that ends within its timeout: resolving, connecting, TLS, sending and reading.

`urllib.request.urlopen(timeout=...)` bounds each socket operation, but the host name is
resolved by `getaddrinfo` before any socket exists, with no timeout, and a receiver that sends
one byte a little more often than the timeout holds the caller for as long as it likes. The
events webhook sink and the linked clients (reports to a central, revocations to a linked
authority) therefore post through here: the name is resolved with
`shared.webhooks.resolve.resolve_within` (bounded by the timeout), the connection goes to the
addresses found (TLS still checked against the host name), and a watchdog
(`shared.webhooks.watchdog`) shuts the socket down when the whole call's deadline passes, so the
call ends at most a few milliseconds after it. Redirects are not followed (none of these
receivers answers one; a redirected POST would lose its body or its credentials).

`http.client` is used directly, as the step-ca webhook client does, because urllib offers no
hook between resolving and connecting and exposes no socket to cut.
"""

from __future__ import annotations

import http.client
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

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

#: The most of an answer's body read (these callers only look at a short JSON answer).
MAX_BODY = 1 << 20


class PostFailed(OSError):
    """No answer: the name did not resolve (in time), or connecting or reading failed."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The receiver's status and (at most `MAX_BODY` bytes of) its body."""

    status: int
    body: bytes


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    context: ssl.SSLContext | None = None,
    resolve: Resolve = system_resolve,
) -> Reply:
    """POST `body` to an http(s) URL; the whole call ends within `timeout` seconds (and a few ms).

    Raises:
        PostFailed: unresolvable, timed out, refused, or a broken answer (the reason in its text).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PostFailed("not an http(s) URL")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise PostFailed("bad port in URL") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout

    def left() -> float:
        return deadline - time.monotonic()

    try:
        addresses = resolve_within(host, port, timeout, resolve)
    except ResolutionTimedOut:
        raise PostFailed(f"resolving {host} timed out") from None
    except ResolutionFailed:
        raise PostFailed(f"cannot resolve {host}") from None
    if left() <= 0:
        raise PostFailed(f"resolving {host} timed out")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = context if context is not None else ssl.create_default_context()
        conn = PinnedHTTPSConnection(host, port, addresses=addresses, remaining=left, context=ctx)
    else:
        conn = PinnedHTTPConnection(host, port, addresses=addresses, remaining=left)
    try:
        with Watchdog(conn, left()) as watchdog:
            try:
                conn.request("POST", target, body=body, headers=dict(headers))
                response = conn.getresponse()
                reply = Reply(response.status, response.read(MAX_BODY))
            except TimeoutError:
                raise PostFailed("timed out") from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if watchdog.expired:
                    raise PostFailed("timed out") from None
                raise PostFailed(str(exc) or type(exc).__name__) from None
    finally:
        conn.close()
    if watchdog.expired:  # cut short: what was read may be a truncated answer
        raise PostFailed("timed out")
    return reply
