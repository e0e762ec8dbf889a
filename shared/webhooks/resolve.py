"""Name resolution and connecting for a webhook call, inside the hook's deadline.

`socket.getaddrinfo` takes no timeout: a resolver that does not answer holds the caller for the
system's own resolver timeout (attempts times servers times seconds), far past a hook's
`timeout`, and `http.client` resolves inside `connect()`, before the client's watchdog has a
socket to cut. So the client resolves first, here: the lookup runs in a daemon thread and the
caller waits for it only until the deadline (a late answer is dropped; the thread ends when the
resolver gives up). Outstanding lookups are capped (`MAX_PENDING`), so a resolver that hangs
costs at most that many idle threads, and a call that cannot start a lookup before its deadline
times out like one whose lookup did not answer. The connection then goes to the addresses found,
in the resolver's order, each attempt bounded by what is left of the deadline; TLS still checks
the certificate against the hook's host name (`server_hostname`), not the address.

The resolver is a parameter (`Resolve`) so tests can give one that hangs: a hosts entry cannot
make the system resolver slow on loopback. No library offers a deadline-bounded getaddrinfo
(asyncio's runs it in a thread pool, as here, without a cap).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

#: `(host, port)` -> `(address family, socket address)` pairs, in the order to try them.
Addresses = Sequence[tuple[int, tuple[Any, ...]]]
Resolve = Callable[[str, int], Addresses]
#: Lookups that may be outstanding at once in this process (each holds one thread).
MAX_PENDING = 16
_pending = threading.BoundedSemaphore(MAX_PENDING)


class ResolutionTimedOut(Exception):
    """The deadline passed before the resolver answered."""


class ResolutionFailed(Exception):
    """The resolver answered: no address (or it failed)."""


def system_resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """The system resolver (`getaddrinfo`), stream sockets only."""
    return [(family, address) for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def resolve_within(host: str, port: int, seconds: float, resolve: Resolve = system_resolve) -> Addresses:
    """The addresses of `host`, or an exception once `seconds` have passed.

    Raises:
        ResolutionTimedOut: no answer within `seconds` (or no lookup could start in that time).
        ResolutionFailed: the resolver failed or found nothing.
    """
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address needs no lookup
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [(family, (host, port) if family == socket.AF_INET else (host, port, 0, 0))]
    if seconds <= 0 or not _pending.acquire(timeout=seconds):
        raise ResolutionTimedOut
    done = threading.Event()
    found: list[tuple[int, tuple[Any, ...]]] = []
    failed: list[BaseException] = []

    def lookup() -> None:
        try:
            found.extend(resolve(host, port))
        except Exception as exc:  # any resolver failure is "not resolved"
            failed.append(exc)
        finally:
            _pending.release()
            done.set()

    threading.Thread(target=lookup, name="webhook-resolve", daemon=True).start()
    if not done.wait(seconds):
        raise ResolutionTimedOut
    if failed or not found:
        raise ResolutionFailed
    return list(found)


def open_socket(addresses: Sequence[tuple[int, tuple[Any, ...]]], remaining: Callable[[], float]) -> socket.socket:
    """A TCP connection to the first address that takes one, each try bounded by `remaining()` seconds.

    Raises:
        TimeoutError: the deadline passed.
        OSError: no address took the connection (the last error).
    """
    last: OSError = OSError("no address")
    for family, address in addresses:
        left = remaining()
        if left <= 0:
            raise TimeoutError
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise
            last = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(max(remaining(), 0.001))
        return sock
    raise last


class PinnedHTTPConnection(http.client.HTTPConnection):
    """`http.client` connecting to addresses already resolved (the Host header keeps the name)."""

    def __init__(self, host: str, port: int, *, addresses: Sequence[tuple[int, tuple[Any, ...]]],
                 remaining: Callable[[], float]) -> None:  # fmt: skip
        super().__init__(host, port, timeout=max(remaining(), 0.001))
        self._addresses, self._remaining = addresses, remaining

    def connect(self) -> None:
        """Open the socket to the resolved addresses."""
        self.sock = open_socket(self._addresses, self._remaining)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As `PinnedHTTPConnection`, over TLS checked against the host name."""

    def __init__(self, host: str, port: int, *, addresses: Sequence[tuple[int, tuple[Any, ...]]],
                 remaining: Callable[[], float], context: ssl.SSLContext) -> None:  # fmt: skip
        super().__init__(host, port, timeout=max(remaining(), 0.001), context=context)
        self._addresses, self._remaining, self._tls_context = addresses, remaining, context

    def connect(self) -> None:
        """Open the socket to the resolved addresses, then TLS with the hook's host name."""
        sock = open_socket(self._addresses, self._remaining)
        try:
            tls = self._tls_context.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        except BaseException:
            sock.close()
            raise
        # Set before the handshake, so the caller's watchdog (`shared.webhooks.watchdog`) finds the
        # socket and can cut a handshake that drips past the deadline.
        self.sock = tls
        tls.do_handshake()
