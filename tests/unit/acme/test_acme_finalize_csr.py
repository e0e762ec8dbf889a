"""Issue 12 items 1, 4, 5 at ACME finalize: hostile CSRs are a badCSR problem (400), never a 500.

The same CSRs as tests/unit/x509/test_csr_rules.py, around the order's one
identifier (127.0.0.1, validated over http-01 on loopback).
"""

from __future__ import annotations

import pytest

from tests import csr_der as D
from tests.keys_weak import close_primes_rsa_key
from tests.unit.acme.acme_support import ACMETestClient, HTTP01Responder, TestCA, b64, make_csr

P = "urn:ietf:params:acme:error:"
HOSTILE = D.hostile_csrs(D.ip(b"\x7f\x00\x00\x01"), None)


@pytest.fixture
def fin(client: ACMETestClient, responder: HTTP01Responder, ca: TestCA) -> str:
    assert client.register().status_code == 201
    order = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    for au in order.get_json()["authorizations"]:
        authz = client.post(au, None).get_json()
        ch = next(x for x in authz["challenges"] if x["type"] == "http-01")
        responder.tokens[ch["token"]] = client.key_authorization(ch["token"])
        assert client.post(ch["url"], {}).get_json()["status"] == "valid"
    return str(order.get_json()["finalize"])


def _bad_csr(client: ACMETestClient, fin: str, der: bytes) -> str:
    r = client.post(fin, {"csr": b64(der)})
    assert r.status_code == 400, (r.status_code, r.data)
    body = r.get_json()
    assert body["type"] == P + "badCSR", body
    return str(body["detail"])


def test_hostile_csrs_are_bad_csr(client: ACMETestClient, fin: str, ca: TestCA) -> None:
    for name, (der, words) in HOSTILE.items():
        detail = _bad_csr(client, fin, der)
        assert words.lower() in detail.lower(), (name, detail)
    assert not ca.issued
    # the order is still ready: a good CSR gets the certificate
    _, good = make_csr(["127.0.0.1"])
    r = client.post(fin, {"csr": b64(good)})
    assert r.status_code == 200, r.data
    ca.issued.clear()


def test_close_primes_rsa_key_is_bad_csr(client: ACMETestClient, fin: str, ca: TestCA) -> None:
    _, der = make_csr(["127.0.0.1"], key=close_primes_rsa_key())
    assert "Fermat" in _bad_csr(client, fin, der)
    assert not ca.issued


def test_an_unavailable_issuer_leaves_the_order_ready(client: ACMETestClient, fin: str, ca: TestCA,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A 503 from issuance (an unreachable webhook) is not a refusal: the order can be finalized again."""
    from shared.errors import Unavailable

    real = ca.issue
    calls: list[int] = []

    def unavailable_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise Unavailable("webhook gate: unreachable")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ca, "issue", unavailable_once)
    _, good = make_csr(["127.0.0.1"])
    r = client.post(fin, {"csr": b64(good)})
    assert r.status_code == 503, r.data
    assert r.get_json()["type"] == P + "serverInternal" and r.headers["Retry-After"]
    r = client.post(fin, {"csr": b64(good)})
    assert r.status_code == 200, r.data
    assert r.get_json()["status"] == "valid" and len(ca.issued) == 1
    ca.issued.clear()
