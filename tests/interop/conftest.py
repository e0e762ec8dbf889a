"""Fixtures for interop tests with real ACME clients (certbot, lego) on loopback.

`acme_https` serves the real `ACMEServer` over HTTPS (Werkzeug's threaded
server with a certificate from the test CA) so clients talk to it exactly as
to a deployed Cirrus; the CA bundle goes to certbot through
REQUESTS_CA_BUNDLE and to lego through LEGO_CA_CERTIFICATES.
pebble-challtestsrv (Debian `pebble`) is the DNS server: every A query
answers 127.0.0.1, and dns-01 TXT records are set through its management API.
"""

from __future__ import annotations

import os
import shutil
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from werkzeug.serving import make_server

from shared.acme.server import ACMEServer
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    ChallTestSrv,
    TestCA,
    build_server,
    free_port,
    provisioner,
    server_tls_files,
    wsgi_app,
)


@dataclass
class ACMEHTTPS:
    """A running Cirrus ACME server over TLS and what a client needs to use it."""

    url: str
    ca_bundle: Path
    store: MemoryStore
    ca: TestCA
    server: ACMEServer
    http01_port: int
    tlsalpn01_port: int
    dns: ChallTestSrv

    def directory(self, provisioner: str = "acme") -> str:
        return f"{self.url}/acme/{provisioner}/directory"


def _server_tls(ca: TestCA, d: Path) -> ssl.SSLContext:
    chain, keyfile, _ = server_tls_files(ca, d)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, keyfile)
    return ctx


@pytest.fixture(scope="session")
def challtestsrv() -> Iterator[ChallTestSrv]:
    if shutil.which("pebble-challtestsrv") is None:
        pytest.fail("pebble-challtestsrv is missing: apt-get install pebble")
    srv = ChallTestSrv()
    yield srv
    srv.close()


@pytest.fixture
def acme_https(tmp_path: Path, challtestsrv: ChallTestSrv) -> Iterator[ACMEHTTPS]:
    store = MemoryStore()
    ca = TestCA(store)
    http_port, tls_port = free_port(), free_port()
    common: dict[str, Any] = {
        "http01Port": http_port,
        "tlsalpn01Port": tls_port,
        "dnsResolver": challtestsrv.resolver,
    }
    provs = [provisioner("acme", **common), provisioner("eab", requireEAB=True, **common)]
    port = free_port()
    acme = build_server(store, ca, provs)
    httpd = make_server("127.0.0.1", port, wsgi_app(acme), threaded=True, ssl_context=_server_tls(ca, tmp_path))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
    try:
        yield ACMEHTTPS(
            url=f"https://127.0.0.1:{port}",
            ca_bundle=bundle,
            store=store,
            ca=ca,
            server=acme,
            http01_port=http_port,
            tlsalpn01_port=tls_port,
            dns=challtestsrv,
        )
    finally:
        httpd.shutdown()
        httpd.server_close()


def client_env(**extra: str) -> dict[str, str]:
    """The environment for a client subprocess (no proxies: everything is loopback)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(extra)
    return env
