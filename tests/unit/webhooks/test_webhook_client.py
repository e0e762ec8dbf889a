"""The webhook client against real loopback servers: the deadline holds against a dripping server,
redirects are not followed, a lying Content-Length is a transport failure, 5xx gets one retry, and
https trusts the CA's own roots."""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.errors import Forbidden, Unavailable
from shared.webhooks.client import WebhookClient, signature
from shared.webhooks.config import Webhook, load_one
from tests.webhook_receiver import hook


def _hook(url: str, timeout: float = 1.0) -> Webhook:
    return load_one("p", hook("h", url, "ENRICHING", timeout=timeout), 0)


@contextmanager
def raw_server(serve: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server on loopback whose every connection is handed to `serve`."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def loop() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_guarded, args=(serve, conn), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        thread.join()
        listener.close()


def _guarded(serve: Callable[[socket.socket], None], conn: socket.socket) -> None:
    try:
        with conn:
            conn.recv(65536)
            serve(conn)
    except OSError:
        pass


def test_a_dripping_server_is_cut_at_the_deadline() -> None:
    def drip(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):  # a byte every 50 ms: each read is quick, the whole answer is not
            conn.sendall(b" ")
            time.sleep(0.05)

    with raw_server(drip) as url:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="timed out"):
            WebhookClient().call(_hook(url, timeout=0.4), url, b"{}")
        assert time.monotonic() - started < 1.0


def test_headers_dripped_forever_are_cut_too() -> None:
    def drip(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for i in range(100):
            conn.sendall(f"X-{i}: y\r\n".encode())
            time.sleep(0.05)

    with raw_server(drip) as url:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="timed out"):
            WebhookClient().call(_hook(url, timeout=0.4), url, b"{}")
        assert time.monotonic() - started < 1.0


def test_a_redirect_is_not_followed() -> None:
    def redirect(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n")

    with raw_server(redirect) as url, pytest.raises(Forbidden, match="redirect"):
        WebhookClient().call(_hook(url), url, b"{}")


def test_a_short_body_under_a_longer_content_length_is_a_transport_failure() -> None:
    def lie(conn: socket.socket) -> None:
        conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"allow": true}')

    with raw_server(lie) as url, pytest.raises(Unavailable, match="unreachable"):
        WebhookClient(retry_delay=0.05).call(_hook(url), url, b"{}")


def test_a_5xx_is_retried_once_then_answered() -> None:
    calls: list[int] = []

    def flaky(conn: socket.socket) -> None:
        calls.append(1)
        if len(calls) == 1:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        else:
            body = b'{"allow": true, "data": {"k": 1}}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with raw_server(flaky) as url:
        answer = WebhookClient(retry_delay=0.05).call(_hook(url), url, b"{}")
    assert answer.data == {"k": 1} and len(calls) == 2


def test_signature_is_hex_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2.
    assert signature(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def _pki(tmp_path: Path) -> tuple[x509.Certificate, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hook Test Root")])
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(root_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "hook.crt", tmp_path / "hook.key"
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return root, cert_path, key_path


def test_https_hooks_are_trusted_through_the_cas_roots(tmp_path: Path) -> None:
    root, cert_path, key_path = _pki(tmp_path)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"allow": true, "data": "over tls"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://localhost:{server.server_address[1]}/hook"
    try:
        assert WebhookClient(roots=[root]).call(_hook(url), url, b"{}").data == "over tls"
        with pytest.raises(Unavailable):  # without the CA's root the server is not trusted
            WebhookClient(retry_delay=0.05).call(_hook(url), url, b"{}")
    finally:
        server.shutdown()
        server.server_close()


def test_an_ipv6_loopback_hook_is_reached() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"allow": true, "data": "' + self.headers["Host"].encode() + b'"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server6(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

    server = Server6(("::1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://[::1]:{server.server_address[1]}/hook"
    try:
        assert WebhookClient().call(_hook(url), url, b"{}").data == f"[::1]:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
