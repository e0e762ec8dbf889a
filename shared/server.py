"""The local HTTPS server behind `cirrus up`.

Python holds the GIL, so one process uses one core. The server forks N worker
processes that accept on one inherited listening socket (a free worker takes
the next connection), each running a single-threaded, event-driven HTTP/1.1
keep-alive WSGI server (`shared.httpserver`; requests that wait on a remote
host run on a small thread pool). Workers share nothing but the store (SQLite in WAL mode
is multi-process safe), which is the same statelessness the Cloud Functions
need.

The master only supervises: a worker that dies is replaced (its clients lose
their connections, no one else notices), and only a crash loop (more than
`RESTART_LIMIT` deaths within `RESTART_WINDOW` seconds) stops the service.
The background work (WAL checkpoints, CRL publication) runs in a child process
of its own, so the master has no threads and forking a replacement cannot
inherit a lock some thread held; when it dies it is restarted after a
growing pause, and never stops the service.

TLS: the server certificate is issued by the CA's own intermediate for its
`dnsNames` (24 h, renewed at two thirds of its life by reloading the context
in place); client certificates are requested but not required
(`CERT_OPTIONAL`, like Go's VerifyClientCertIfGiven) and verified against the
roots (with every authority's intermediates to build paths from), which is what mTLS
renew/rekey/revoke rely on.
"""

from __future__ import annotations

import collections
import datetime as dt
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared import linelog
from shared.httpserver import ConnectionBalance, Limits, WSGIServer
from shared.runtime import Services
from shared.x509.profile import sign_certificate
from shared.x509.serials import random_serial

log = logging.getLogger("cirrus.server")

SERVER_CERT_LIFETIME = dt.timedelta(hours=24)
RESTART_LIMIT = 5  # worker deaths tolerated within RESTART_WINDOW before the service stops
RESTART_WINDOW = 60.0
_BACKGROUND = -1  # the child index that names the background process
BACKGROUND_PAUSE = 1.0  # a dead background process is restarted after this, doubling up to
BACKGROUND_PAUSE_MAX = 300.0  # this (and back to the start once one has run this long)


def issue_server_certificate(services: Services, directory: Path) -> tuple[Path, Path, dt.datetime]:
    """Issue the TLS server certificate from the CA's own intermediate.

    The key is fresh and lives only in a 0600 temp file for the SSL context.
    """
    s = services
    now = s.clock.now()
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for n in s.settings.dns_names:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(n.strip("[]"))))
        except ValueError:
            names.append(x509.DNSName(n))
    exts: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(
            x509.KeyUsage.oid, True, x509.KeyUsage(True, False, False, False, False, False, False, False, False)
        ),
        x509.Extension(x509.ExtendedKeyUsage.oid, False, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])),
        x509.Extension(x509.SubjectAlternativeName.oid, False, x509.SubjectAlternativeName(names)),
    ]
    not_after = now + SERVER_CERT_LIFETIME
    if s.ra_upstream is not None:  # a registration authority has no key: upstream issues this one too
        from shared.ra import upstream_server_certificate

        cert = upstream_server_certificate(s.ra_upstream, key, s.settings.dns_names)
        not_after = cert.not_valid_after_utc
        chain = s.intermediates
    else:
        authority = s.issuing()  # the generation active now (shared.rotation), its key and its chain
        chain = authority.intermediates
        cert = sign_certificate(
            authority.issuer,
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, s.settings.common_name)]),
            public_key=key.public_key(),
            serial=random_serial(),
            not_before=now - dt.timedelta(minutes=1),
            not_after=not_after,
            extensions=exts,
        )
    fd, cert_path = tempfile.mkstemp(dir=directory, prefix="server-", suffix=".crt")
    with os.fdopen(fd, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
        for c in chain:
            fh.write(c.public_bytes(serialization.Encoding.PEM))
    fd, key_path = tempfile.mkstemp(dir=directory, prefix="server-", suffix=".key")
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return Path(cert_path), Path(key_path), not_after


def tls_context(services: Services, runtime_dir: Path) -> tuple[ssl.SSLContext, dt.datetime]:
    """A server context with a fresh certificate and optional client auth."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_OPTIONAL
    from shared.authorities import client_ca_certificates

    ctx.load_verify_locations(
        cadata="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in client_ca_certificates(services))
    )
    ctx.verify_flags &= ~ssl.VERIFY_X509_PARTIAL_CHAIN  # an intermediate is no trust anchor (see above)
    ctx.set_alpn_protocols(["http/1.1"])
    expires = _load_server_cert(ctx, services, runtime_dir)
    return ctx, expires


def _load_server_cert(ctx: ssl.SSLContext, services: Services, runtime_dir: Path) -> dt.datetime:
    cert_path, key_path, expires = issue_server_certificate(services, runtime_dir)
    try:
        ctx.load_cert_chain(cert_path, key_path)
    finally:
        cert_path.unlink(missing_ok=True)
        key_path.unlink(missing_ok=True)
    return expires


def parse_address(address: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 in brackets).

    Raises:
        ValueError: malformed address.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":9443" means all interfaces, as in step-ca


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening socket (workers inherit it across fork)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve_worker(
    make_services: Callable[[], Services],
    make_app: Callable[[Services], Any],
    sock: socket.socket,
    runtime_dir: Path,
    balance: ConnectionBalance | None = None,
) -> None:
    """Run one worker on the shared listening socket until SIGTERM/SIGINT."""
    services = make_services()
    app = make_app(services)
    ctx, expires = tls_context(services, runtime_dir)
    group_factory = getattr(app, "commit_group", None)
    server = WSGIServer(
        sock,
        app,
        ctx,
        offload=getattr(app, "waits_on_network", None),
        balance=balance,
        commit_group=group_factory() if callable(group_factory) else None,
        after_turn=linelog.flush,
        limits=Limits(max_body=services.settings.max_body_bytes),  # refused before it is buffered
    )
    linelog.batch()  # this process's loop writes the access and event lines once per turn
    stop = threading.Event()

    def renew_loop() -> None:
        nonlocal expires
        while not stop.is_set():
            lifetime = SERVER_CERT_LIFETIME.total_seconds()
            remaining = (expires - services.clock.now()).total_seconds()
            wait = max(remaining - lifetime / 3, 5.0)
            if stop.wait(wait):
                return
            try:
                expires = _load_server_cert(ctx, services, runtime_dir)
                log.info('{"event":"server certificate renewed"}')
            except Exception:
                log.exception("server certificate renewal failed; retrying")

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=renew_loop, daemon=True, name="server-cert-renewal").start()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        stop.set()
        server.server_close()
        services.close()
        linelog.flush()


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the master dies (even by SIGKILL), so no orphan keeps the port."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the master's SIGTERM handler still stops workers
        pass
    if os.getppid() == 1:  # the master died before prctl took effect
        os._exit(0)


def _child(run: Callable[[], None], what: str) -> int:
    """In a freshly forked child: run, then exit without returning to the caller's stack."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the master's handler is not this process's
    _die_with_parent()
    code = 0
    try:
        run()
    except Exception:
        log.exception("%s failed", what)
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _run_background(background: Callable[[threading.Event], None]) -> None:
    """The master's background work, in its own process, until SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    background(stop)
    stop.wait()  # the work may run on threads of its own: keep them until told to stop
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(timeout=5)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal {-code}" if code < 0 else f"status {code}"


def serve(
    make_services: Callable[[], Services],
    make_app: Callable[[Services], Any],
    address: str,
    *,
    workers: int,
    runtime_dir: Path,
    on_ready: Callable[[], None] | None = None,
    background: Callable[[threading.Event], None] | None = None,
    restart_limit: int = RESTART_LIMIT,
    restart_window: float = RESTART_WINDOW,
) -> int:
    """Fork `workers` processes serving `address`, replacing any that dies; return when signalled.

    Returns 1 when more than `restart_limit` children died within `restart_window` seconds
    (a crash loop: something every worker meets, such as a broken store), else 0.
    """
    host, port = parse_address(address)
    # One listening socket, bound in the parent (a busy port fails fast with a clear message)
    # and inherited by every worker. Workers accept one connection per wake-up, so whichever
    # is free takes the next client; per-worker SO_REUSEPORT sockets would instead hash
    # connections to workers blindly, and with a few busy clients one core could sit idle.
    # The master keeps it open to hand to replacement workers.
    shared_sock = listening_socket(host, port)
    count = max(1, workers)
    balance = ConnectionBalance(count)

    def spawn_worker(index: int) -> int:
        pid = os.fork()
        if pid == 0:
            balance.index = index
            _child(lambda: serve_worker(make_services, make_app, shared_sock, runtime_dir, balance), "worker")
        return pid

    def spawn_background() -> int:
        assert background is not None
        pid = os.fork()
        if pid == 0:
            shared_sock.close()
            _child(lambda: _run_background(background), "background work")
        return pid

    children: dict[int, int] = {spawn_worker(index): index for index in range(count)}  # pid -> index
    background_started = time.monotonic()
    if background is not None:
        children[spawn_background()] = _BACKGROUND
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if on_ready is not None:
        on_ready()
    exit_code = 0
    deaths: collections.deque[float] = collections.deque()  # workers' only
    background_due = 0.0  # when to start the background process again (0: it runs)
    background_pause = BACKGROUND_PAUSE
    while not stop.is_set():
        now = time.monotonic()
        if background_due and now >= background_due:
            background_due = 0.0
            children[spawn_background()] = _BACKGROUND
            background_started = now
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if not pid:
            stop.wait(0.2)
            continue
        index = children.pop(pid, None)
        if index is None:
            continue
        if index == _BACKGROUND:
            # Checkpoints and CRLs can wait: never a reason to stop serving, only to retry later.
            if now - background_started > BACKGROUND_PAUSE_MAX:
                background_pause = BACKGROUND_PAUSE
            log.error(
                "background process (pid %d) exited (%s); starting a new one in %.0f s",
                pid, _describe(status), background_pause,
            )
            background_due = now + background_pause
            background_pause = min(BACKGROUND_PAUSE_MAX, background_pause * 2)
            continue
        deaths.append(now)
        while deaths and deaths[0] < now - restart_window:
            deaths.popleft()
        if len(deaths) > restart_limit:
            log.error(
                "worker %d (pid %d) exited (%s); %d workers exited within %.0f s; shutting down",
                index, pid, _describe(status), len(deaths), restart_window,
            )
            exit_code = 1
            break
        log.error("worker %d (pid %d) exited (%s); starting a new one", index, pid, _describe(status))
        balance.vacate(index)  # siblings must not wait for its stale count
        children[spawn_worker(index)] = index
    shared_sock.close()
    pids = list(children)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
    sys.stdout.flush()
    return exit_code
