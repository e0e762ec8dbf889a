"""Validators against real loopback servers: HTTP, TLS with ALPN, and pebble-challtestsrv DNS."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

import pytest

from shared.acme.challenges import dns01, http01, tlsalpn01
from shared.acme.challenges.addresses import address_allowed
from shared.acme.identifiers import Identifier
from shared.acme.nonces import NonceService
from shared.acme.problems import ACMEProblem
from shared.clock import FixedClock
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    HTTP01Responder,
    TLSALPNResponder,
    alpn_cert,
    b64,
    free_port,
    provisioner,
)

KA = "tok.thumb"
LOOP = Identifier("ip", "127.0.0.1")


def _kind(exc: pytest.ExceptionInfo[ACMEProblem]) -> str:
    return exc.value.kind


# ---------------------------------------------------------------------- http-01


def test_http01_ok_with_trailing_whitespace(responder: HTTP01Responder) -> None:
    responder.tokens["tok"] = KA + "\r\n "
    http01.validate(LOOP, "tok", KA, provisioner(http01Port=responder.port))


def test_http01_failures(responder: HTTP01Responder) -> None:
    cfg = provisioner(http01Port=responder.port)
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "missing", KA, cfg)
    assert _kind(e) == "unauthorized"
    responder.tokens["tok"] = "tok.other"
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "tok", KA, cfg)
    assert _kind(e) == "incorrectResponse"
    responder.tokens["big"] = "x" * 10000
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "big", KA, cfg)
    assert _kind(e) == "unauthorized"
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "tok", KA, provisioner(http01Port=free_port()))
    assert _kind(e) == "connection"


def test_http01_redirects(responder: HTTP01Responder) -> None:
    cfg = provisioner(http01Port=responder.port, maxRedirects=3)
    responder.tokens["final"] = KA
    responder.redirects["/.well-known/acme-challenge/tok"] = "/.well-known/acme-challenge/final"
    http01.validate(LOOP, "tok", KA, cfg)
    # a loop exhausts the redirect budget
    responder.redirects["/.well-known/acme-challenge/a"] = "/.well-known/acme-challenge/a"
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "a", KA, cfg)
    assert _kind(e) == "connection" and "redirects" in e.value.detail
    # other ports and schemes are refused
    responder.redirects["/.well-known/acme-challenge/p"] = "http://127.0.0.1:1/x"
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "p", KA, cfg)
    assert "port" in e.value.detail
    responder.redirects["/.well-known/acme-challenge/f"] = "ftp://127.0.0.1/x"
    with pytest.raises(ACMEProblem):
        http01.validate(LOOP, "f", KA, cfg)
    # a redirect to a private address is refused even when loopback is allowed
    responder.redirects["/.well-known/acme-challenge/m"] = f"http://169.254.169.254:{responder.port}/x"
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "m", KA, cfg)
    assert _kind(e) == "connection"


def test_http01_refuses_loopback_unless_allowed(responder: HTTP01Responder) -> None:
    responder.tokens["tok"] = KA
    with pytest.raises(ACMEProblem) as e:
        http01.validate(LOOP, "tok", KA, provisioner(http01Port=responder.port, allowLoopback=False))
    assert _kind(e) == "connection"
    with pytest.raises(ACMEProblem):
        http01.validate(Identifier("dns", "localhost.example"), "tok", KA,
                        provisioner(http01Port=responder.port, allowLoopback=False,
                                    dnsResolver="127.0.0.1:1", validationTimeout=0.5))


@pytest.mark.parametrize(
    ("addr", "loop", "private", "ok"),
    [
        ("8.8.8.8", False, False, True),
        ("2606:4700::1", False, False, True),
        ("127.0.0.1", False, False, False),
        ("127.0.0.1", True, False, True),
        ("::1", True, False, True),
        ("::ffff:127.0.0.1", False, False, False),
        ("10.0.0.1", True, False, False),
        ("10.0.0.1", False, True, True),
        ("192.168.1.1", False, False, False),
        ("100.64.0.1", False, False, False),
        ("169.254.169.254", True, False, False),
        ("fe80::1", False, False, False),
        ("fd00::1", False, False, False),
        ("0.0.0.0", True, True, False),
        ("224.0.0.1", True, True, False),
    ],
)
def test_address_policy(addr: str, loop: bool, private: bool, ok: bool) -> None:
    cfg = provisioner(allowLoopback=loop, allowPrivateAddresses=private)
    assert address_allowed(ipaddress.ip_address(addr), cfg) is ok


# ---------------------------------------------------------------------- tls-alpn-01


@pytest.mark.parametrize("ident", [Identifier("dns", "alpn.example.com"), LOOP])
def test_tlsalpn01_ok(ident: Identifier, challtestsrv) -> None:  # type: ignore[no-untyped-def]
    key, cert = alpn_cert(ident, KA)
    srv = TLSALPNResponder(key, cert)
    try:
        tlsalpn01.validate(ident, "tok", KA, provisioner(tlsalpn01Port=srv.port, dnsResolver=challtestsrv.resolver))
        want = "1.0.0.127.in-addr.arpa" if ident.type == "ip" else "alpn.example.com"
        assert srv.sni[-1] == want
    finally:
        srv.close()


@pytest.mark.parametrize(
    ("kwargs", "alpn", "ka", "kind"),
    [
        ({"critical": False}, "acme-tls/1", KA, "unauthorized"),
        ({"extra_san": "other.example.com"}, "acme-tls/1", KA, "unauthorized"),
        ({}, "acme-tls/1", "tok.wrong", "incorrectResponse"),
        ({}, "http/1.1", KA, "tls"),
    ],
)
def test_tlsalpn01_failures(kwargs: dict, alpn: str, ka: str, kind: str) -> None:
    key, cert = alpn_cert(LOOP, ka, **kwargs)
    srv = TLSALPNResponder(key, cert, alpn=alpn)
    try:
        with pytest.raises(ACMEProblem) as e:
            tlsalpn01.validate(LOOP, "tok", KA, provisioner(tlsalpn01Port=srv.port))
        assert _kind(e) == kind
    finally:
        srv.close()


# ---------------------------------------------------------------------- dns-01


def test_dns01(challtestsrv) -> None:  # type: ignore[no-untyped-def]
    cfg = provisioner(dnsResolver=challtestsrv.resolver)
    ident = Identifier("dns", "txt.example.com")
    with pytest.raises(ACMEProblem) as e:
        dns01.validate(ident, "tok", KA, cfg)
    assert _kind(e) == "unauthorized"
    challtestsrv.set_txt("_acme-challenge.txt.example.com", "wrong")
    with pytest.raises(ACMEProblem) as e:
        dns01.validate(ident, "tok", KA, cfg)
    assert _kind(e) == "incorrectResponse"
    challtestsrv.set_txt("_acme-challenge.txt.example.com", b64(hashlib.sha256(KA.encode()).digest()))
    dns01.validate(ident, "tok", KA, cfg)
    challtestsrv.clear_txt("_acme-challenge.txt.example.com")


def test_dns01_resolver_down() -> None:
    cfg = provisioner(dnsResolver=f"127.0.0.1:{free_port()}", validationTimeout=0.5)
    with pytest.raises(ACMEProblem) as e:
        dns01.validate(Identifier("dns", "x.example.com"), "tok", KA, cfg)
    assert _kind(e) == "dns"


# ---------------------------------------------------------------------- nonces


def test_nonces_single_use_across_instances_and_expire() -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    store = MemoryStore(clock=clock)
    a = NonceService(key=b"s" * 32, ledger=store, clock=clock)
    b = NonceService(key=b"s" * 32, ledger=store, clock=clock)
    n = a.issue()
    b.redeem(n)  # another instance accepts it once
    with pytest.raises(ACMEProblem) as e:
        a.redeem(n)
    assert _kind(e) == "badNonce"
    other = NonceService(key=b"t" * 32, ledger=store, clock=clock)
    with pytest.raises(ACMEProblem):
        other.redeem(a.issue())  # a nonce MACed with another key
    old = a.issue()
    clock.advance(dt.timedelta(minutes=31))
    with pytest.raises(ACMEProblem) as e:
        a.redeem(old)
    assert "expired" in e.value.detail
    # claims expire with their nonce, so the ledger can be purged
    assert store.purge_expired(clock.now()) == 1
