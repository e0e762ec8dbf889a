"""http-01 validation (RFC 8555 s.8.3, ACME-09).

GET `http://{identifier}:{port}/.well-known/acme-challenge/{token}`, following
at most `maxRedirects` redirects to http/https on the validation ports, each
hop re-resolved and address-checked. HTTPS hops do not verify the server's
certificate (the point is to reach the token, as Let's Encrypt does).

The whole fetch, every hop included, ends by one `Deadline`. `http.client`
reads the response through `sock.makefile()` with the socket's per-read
timeout only, so the socket handed to it is wrapped (`_DeadlineSocket`): each
read and write waits at most what is left of the deadline. A target
dripping one byte at a time is cut off at the deadline, not after its last byte.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import socket
import ssl
from urllib.parse import urljoin, urlsplit

from shared.acme.challenges.addresses import pick_address
from shared.acme.challenges.deadline import Deadline
from shared.acme.config import ACMEProvisionerConfig
from shared.acme.identifiers import Identifier
from shared.acme.problems import ACMEProblem

_MAX_BODY = 4096


class _DeadlineReader(io.RawIOBase):
    """The response stream `http.client` reads: every read waits at most what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        self._sock.settimeout(self._deadline.timeout())
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What `http.client.HTTPConnection` uses of its socket (`sendall`, `makefile`, `close`), under a deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.timeout())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        """Nothing: `http.client` closes the connection before the response is read; `_fetch` closes the socket."""


def _fetch(
    scheme: str, host: str, port: int, target: str, config: ACMEProvisionerConfig, deadline: Deadline
) -> tuple[int, str | None, bytes]:
    ip = pick_address(host, config, deadline)
    try:
        sock = socket.create_connection((str(ip), port), timeout=deadline.timeout())
    except OSError as exc:
        raise ACMEProblem("connection", f"could not connect to {host}:{port}") from exc
    try:
        if scheme == "https":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                ipaddress.ip_address(host)
                sni = None
            except ValueError:
                sni = host
            sock.settimeout(deadline.remaining())  # the handshake as a whole ends by the deadline
            sock = ctx.wrap_socket(sock, server_hostname=sni)
        conn = http.client.HTTPConnection(host, port, timeout=config.validation_timeout)
        conn.sock = _DeadlineSocket(sock, deadline)
        default = 443 if scheme == "https" else 80
        host_header = host if ":" not in host else f"[{host}]"
        if port != default:
            host_header += f":{port}"
        conn.request("GET", target, headers={"Host": host_header, "User-Agent": "cirrus-acme-validator"})
        resp = conn.getresponse()
        body = resp.read(_MAX_BODY + 1)
        return resp.status, resp.getheader("Location"), body
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if deadline.remaining() <= 0:  # a step that timed out at the deadline
            raise deadline.problem() from exc
        raise ACMEProblem("connection", f"error fetching {scheme}://{host}:{port}") from exc
    finally:
        sock.close()


def validate(
    identifier: Identifier,
    token: str,
    key_authorization: str,
    config: ACMEProvisionerConfig,
    deadline: Deadline | None = None,
) -> None:
    """Raise an ACMEProblem unless the token resource holds the key authorization (all by `deadline`)."""
    deadline = deadline or Deadline.start(config)
    host = identifier.base
    scheme, port, target = "http", config.http01_port, f"/.well-known/acme-challenge/{token}"
    allowed_ports = {80, 443, config.http01_port}
    for _hop in range(config.max_redirects + 1):
        status, location, body = _fetch(scheme, host, port, target, config, deadline)
        if status in (301, 302, 303, 307, 308) and location:
            base = f"{scheme}://{host if ':' not in host else '[' + host + ']'}:{port}{target}"
            nxt = urlsplit(urljoin(base, location))
            if nxt.scheme not in ("http", "https") or not nxt.hostname:
                raise ACMEProblem("connection", "redirect to an unsupported URL")
            scheme, host = nxt.scheme, nxt.hostname
            port = nxt.port or (443 if scheme == "https" else 80)
            if port not in allowed_ports:
                raise ACMEProblem("connection", f"redirect to disallowed port {port}")
            target = (nxt.path or "/") + (f"?{nxt.query}" if nxt.query else "")
            continue
        if status != 200:
            raise ACMEProblem("unauthorized", f"invalid response from {host}: HTTP {status}")
        if len(body) > _MAX_BODY:
            raise ACMEProblem("unauthorized", "response body too large")
        text = body.decode("utf-8", "replace").rstrip()
        if text != key_authorization:
            raise ACMEProblem("incorrectResponse", "key authorization does not match")
        return
    raise ACMEProblem("connection", "too many redirects")
