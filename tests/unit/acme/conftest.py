from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    ACMETestClient,
    ChallTestSrv,
    HTTP01Responder,
    TestCA,
    build_server,
    provisioner,
    wsgi_app,
)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def ca(store: MemoryStore) -> TestCA:
    return TestCA(store, deny=["forbidden.example.com"])


@pytest.fixture
def responder() -> Iterator[HTTP01Responder]:
    r = HTTP01Responder()
    yield r
    r.close()


@pytest.fixture(scope="session")
def challtestsrv() -> Iterator[ChallTestSrv]:
    srv = ChallTestSrv()
    yield srv
    srv.close()


@pytest.fixture
def app(store: MemoryStore, ca: TestCA, responder: HTTP01Responder, challtestsrv: ChallTestSrv):  # type: ignore[no-untyped-def]
    provs = [
        provisioner("acme", http01Port=responder.port, dnsResolver=challtestsrv.resolver),
        provisioner("eab", requireEAB=True, http01Port=responder.port),
        provisioner("httponly", challenges=["http-01"], http01Port=responder.port),
        provisioner("strict", http01Port=responder.port, allowLoopback=False),
    ]
    return wsgi_app(build_server(store, ca, provs))


@pytest.fixture
def client(app) -> ACMETestClient:  # type: ignore[no-untyped-def]
    return ACMETestClient(app)
