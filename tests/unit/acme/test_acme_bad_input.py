"""Every hostile or malformed request gets the right problem, never a 500, never a certificate."""

from __future__ import annotations

import base64
import json
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.unit.acme.acme_support import ACMETestClient, HTTP01Responder, TestCA, b64, jwk_of, make_csr, make_jws

pytestmark = pytest.mark.hostile  # no request may reach the generic 500 handler (tests/hostile.py)

P = "urn:ietf:params:acme:error:"


def problem(r, kind: str, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, (r.status_code, r.data)
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["type"] == P + kind, body
    assert body["status"] == status
    assert r.headers.get("Replay-Nonce")
    assert any('rel="index"' in link for link in r.headers.getlist("Link"))
    return body


@pytest.fixture
def registered(client: ACMETestClient) -> ACMETestClient:
    assert client.register().status_code == 201
    return client


@pytest.fixture(autouse=True)
def _no_certificate(ca: TestCA):  # type: ignore[no-untyped-def]
    yield
    # Tests that issue on purpose clear this list; a bad request must never have issued.
    assert ca.issued == []


def _order_url(c: ACMETestClient) -> str:
    return c.directory["newOrder"]


# ---------------------------------------------------------------------- JWS structure


def test_wrong_content_type(registered: ACMETestClient) -> None:
    url = _order_url(registered)
    body = make_jws(registered.key, url, {"identifiers": []}, nonce=registered.nonce(), kid=registered.kid)
    problem(registered.raw(url, body, content_type="application/json"), "malformed", 415)


def test_both_jwk_and_kid(registered: ACMETestClient) -> None:
    url = _order_url(registered)
    body = make_jws(
        registered.key, url, {}, nonce=registered.nonce(), kid=registered.kid, extra={"jwk": jwk_of(registered.key)}
    )
    problem(registered.raw(url, body), "malformed", 400)


def test_neither_jwk_nor_kid(registered: ACMETestClient) -> None:
    url = _order_url(registered)
    body = make_jws(registered.key, url, {}, nonce=registered.nonce(), jwk=False)
    problem(registered.raw(url, body), "malformed", 400)


def test_url_mismatch(registered: ACMETestClient) -> None:
    url = _order_url(registered)
    body = make_jws(
        registered.key, url.replace("new-order", "new-account"), {}, nonce=registered.nonce(), kid=registered.kid
    )
    problem(registered.raw(url, body), "unauthorized", 401)


def test_replayed_nonce(registered: ACMETestClient) -> None:
    nonce = registered.nonce()
    r = registered.post(registered.kid, None, nonce=nonce)
    assert r.status_code == 200
    body = problem(registered.post(registered.kid, None, nonce=nonce), "badNonce", 400)
    assert "used" in body["detail"]


@pytest.mark.parametrize("nonce", ["", "AAAA", b64(b"x" * 40), "not base64!"])
def test_unknown_or_forged_nonce(registered: ACMETestClient, nonce: str) -> None:
    url = registered.kid
    body = make_jws(registered.key, url, None, nonce=nonce, kid=registered.kid)
    problem(registered.raw(url, body), "badNonce", 400)


def test_missing_nonce(registered: ACMETestClient) -> None:
    url = registered.kid
    problem(registered.raw(url, make_jws(registered.key, url, None, nonce=None, kid=registered.kid)), "badNonce", 400)


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "ES256K", "RS1", "es256"])
def test_bad_algorithms(registered: ACMETestClient, alg: str) -> None:
    url = registered.kid
    body = make_jws(registered.key, url, None, nonce=registered.nonce(), kid=registered.kid, alg=alg)
    if alg == "none":
        body["signature"] = ""
    got = problem(registered.raw(url, body), "badSignatureAlgorithm", 400)
    assert "ES256" in got["algorithms"] and "none" not in got["algorithms"]
    assert not any(a.startswith("HS") for a in got["algorithms"])


def test_alg_not_matching_key(registered: ACMETestClient) -> None:
    url = registered.kid
    body = make_jws(registered.key, url, None, nonce=registered.nonce(), kid=registered.kid, alg="RS256")
    problem(registered.raw(url, body), "badSignatureAlgorithm", 400)


def test_private_key_as_jwk(client: ACMETestClient) -> None:
    url = client.directory["newAccount"]
    jwk = jwk_of(client.key)
    jwk["d"] = b64(client.key.private_numbers().private_value.to_bytes(32, "big"))
    body = make_jws(
        client.key, url, {"termsOfServiceAgreed": True}, nonce=client.nonce(), jwk=False, extra={"jwk": jwk}
    )
    problem(client.raw(url, body), "badPublicKey", 400)


def test_symmetric_jwk(client: ACMETestClient) -> None:
    url = client.directory["newAccount"]
    body = make_jws(
        client.key, url, {}, nonce=client.nonce(), jwk=False, extra={"jwk": {"kty": "oct", "k": b64(b"secret")}}
    )
    problem(client.raw(url, body), "badPublicKey", 400)


def test_weak_rsa_account_key(client: ACMETestClient) -> None:
    key = rsa.generate_private_key(65537, 1024)
    problem(client.post(client.directory["newAccount"], {}, key=key, kid=None), "badPublicKey", 400)


def test_oversized_payload(registered: ACMETestClient) -> None:
    url = _order_url(registered)
    huge = {"identifiers": [{"type": "dns", "value": "a" * 100_000}]}
    problem(registered.post(url, huge), "malformed", 413)


def test_flattened_only(registered: ACMETestClient) -> None:
    url = registered.kid
    flat = make_jws(registered.key, url, None, nonce=registered.nonce(), kid=registered.kid)
    general = {
        "payload": flat["payload"],
        "signatures": [{"protected": flat["protected"], "signature": flat["signature"]}],
    }
    problem(registered.raw(url, general), "malformed", 400)
    unprotected = dict(
        make_jws(registered.key, url, None, nonce=registered.nonce(), kid=registered.kid), header={"kid": "x"}
    )
    problem(registered.raw(url, unprotected), "malformed", 400)
    problem(registered.raw(url, b"eyJ.compact.jws"), "malformed", 400)
    problem(registered.raw(url, b"[1,2]"), "malformed", 400)


def test_padded_base64_and_duplicates_and_crit(registered: ACMETestClient) -> None:
    url = registered.kid
    body = make_jws(registered.key, url, None, nonce=registered.nonce(), kid=registered.kid)
    body["protected"] += "=" * (-len(body["protected"]) % 4 or 4)
    problem(registered.raw(url, body), "malformed", 400)
    header = '{"alg":"ES256","alg":"ES256","url":"%s","kid":"%s","nonce":"%s"}' % (
        url,
        registered.kid,
        registered.nonce(),
    )
    prot = b64(header.encode())
    sig = b64(b"\0" * 64)
    dup = problem(registered.raw(url, {"protected": prot, "payload": "", "signature": sig}), "malformed", 400)
    assert dup["detail"] == "duplicate member 'alg'"  # refused for the duplicate, before any signature check
    body = make_jws(
        registered.key, url, None, nonce=registered.nonce(), kid=registered.kid, extra={"crit": ["exp"], "exp": 1}
    )
    problem(registered.raw(url, body), "malformed", 400)



def test_unpaired_surrogate_in_a_payload_is_malformed(registered: ACMETestClient) -> None:
    """A string no UTF-8 encoder can write (I-JSON RFC 7493 s.2.1) is refused before it reaches a record."""
    url = registered.kid
    body = make_jws(registered.key, url, {"contact": ["mailto:\ud800@example.com"]}, nonce=registered.nonce(), kid=url)
    refused = problem(registered.raw(url, body), "malformed", 400)
    assert refused["detail"] == "unpaired surrogate in a string"
    paired = make_jws(registered.key, url, {"contact": ["mailto:\U0001f600@example.com"]}, nonce=registered.nonce(), kid=url)
    assert "\\ud83d" in base64.urlsafe_b64decode(paired["payload"] + "==").decode()  # a pair is fine JSON
    assert registered.raw(url, paired).status_code != 500

def test_der_ecdsa_signature_rejected(registered: ACMETestClient) -> None:
    url = registered.kid
    body = make_jws(registered.key, url, None, nonce=registered.nonce(), kid=registered.kid)
    raw = base64.urlsafe_b64decode(body["signature"] + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    body["signature"] = b64(der)
    problem(registered.raw(url, body), "malformed", 400)


def test_signature_by_other_key(registered: ACMETestClient) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    problem(registered.post(registered.kid, None, key=other), "malformed", 400)


def test_forged_signature_does_not_burn_nonce(registered: ACMETestClient) -> None:
    nonce = registered.nonce()
    other = ec.generate_private_key(ec.SECP256R1())
    problem(registered.post(registered.kid, None, key=other, nonce=nonce), "malformed", 400)
    assert registered.post(registered.kid, None, nonce=nonce).status_code == 200


def test_kid_and_jwk_placement(client: ACMETestClient, registered: ACMETestClient) -> None:
    problem(registered.post(registered.directory["newAccount"], {}), "malformed", 400)  # kid on newAccount
    problem(registered.post(_order_url(registered), {"identifiers": []}, kid=None), "malformed", 400)
    bogus = registered.kid.rsplit("/", 1)[0] + "/doesnotexist"
    problem(registered.post(_order_url(registered), {}, kid=bogus), "accountDoesNotExist", 400)


def test_methods_and_routes(client: ACMETestClient) -> None:
    problem(client.http.get(client.directory["newOrder"]), "malformed", 405)
    problem(client.http.post(client.directory["newNonce"]), "malformed", 405)
    problem(client.http.get("http://localhost/acme/nope/directory"), "malformed", 404)
    problem(
        client.http.post("http://localhost/acme/acme/whatever", headers={"Content-Type": "application/jose+json"}),
        "malformed",
        404,
    )
    problem(client.http.get(client.directory["renewalInfo"] + "/garbage"), "malformed", 400)
    problem(client.http.get(client.directory["renewalInfo"] + "/AAAA.AQ"), "malformed", 404)


def test_random_garbage_never_500(registered: ACMETestClient) -> None:
    rnd = random.Random(8555)
    urls = [registered.directory[k] for k in ("newAccount", "newOrder", "revokeCert", "keyChange")]
    urls.append(registered.kid)
    for i in range(200):
        url = rnd.choice(urls)
        choice = i % 4
        if choice == 0:
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
        elif choice == 1:
            body = json.dumps(
                {"protected": b64(bytes(rnd.randrange(256) for _ in range(30))), "payload": "", "signature": ""}
            ).encode()
        elif choice == 2:
            hdr = {
                "alg": "ES256",
                "url": url,
                "nonce": registered.nonce(),
                "kid": registered.kid,
                rnd.choice(["jwk", "x5u", "b64", "zip"]): rnd.choice([1, "x", None, [], {}]),
            }
            body = json.dumps(
                {"protected": b64(json.dumps(hdr).encode()), "payload": b64(b"{}"), "signature": b64(b"\1" * 64)}
            ).encode()
        else:
            payload = rnd.choice(
                [
                    b"null",
                    b"[]",
                    b"1",
                    b'{"identifiers": 5}',
                    b'{"csr": []}',
                    b'{"identifiers": [{"type": "dns", "value": 7}]}',
                    b'{"contact": "x"}',
                    b'{"certificate": "AAAA", "reason": "x"}',
                    b'{"status": 5}',
                ]
            )
            body = json.dumps(
                make_jws(registered.key, url, payload, nonce=registered.nonce(), kid=registered.kid)
            ).encode()
        r = registered.raw(url, body)
        assert r.status_code < 500, (url, body, r.data)
        assert r.mimetype in ("application/problem+json", "application/json"), r.data


# ---------------------------------------------------------------------- accounts


def test_contacts(client: ACMETestClient) -> None:
    problem(client.register(contact=["tel:+1555"]), "unsupportedContact", 400)
    problem(client.register(contact=["mailto:nobody"]), "invalidContact", 400)
    problem(client.register(contact=["mailto:a@example.com?subject=x"]), "invalidContact", 400)
    problem(client.register(contact="mailto:a@example.com"), "invalidContact", 400)
    problem(client.register(contact=[f"mailto:a{i}@example.com" for i in range(20)]), "invalidContact", 400)


def test_bad_account_update(registered: ACMETestClient) -> None:
    problem(registered.post(registered.kid, {"status": "valid"}), "malformed", 400)
    problem(registered.post(registered.kid, {"contact": ["ftp://x"]}), "unsupportedContact", 400)


def test_eab_wrong_url_and_missing(app, store) -> None:  # type: ignore[no-untyped-def]
    from shared.acme import eab
    from shared.clock import SystemClock

    c = ACMETestClient(app, base="http://localhost/acme/eab")
    kid, key = eab.add_key(store, SystemClock(), provisioner="eab")
    import hashlib
    import hmac

    prot = b64(json.dumps({"alg": "HS256", "kid": kid, "url": "http://evil/new-account"}).encode())
    payload = b64(json.dumps(jwk_of(c.key)).encode())
    raw = base64.urlsafe_b64decode(key + "=")
    sig = b64(hmac.new(raw, f"{prot}.{payload}".encode(), hashlib.sha256).digest())
    problem(
        c.register(externalAccountBinding={"protected": prot, "payload": payload, "signature": sig}),
        "unauthorized",
        403,
    )
    problem(c.register(), "externalAccountRequired", 401)
    # an EAB key of another provisioner does not bind here
    kid2, key2 = eab.add_key(store, SystemClock(), provisioner="acme")
    prot = b64(json.dumps({"alg": "HS256", "kid": kid2, "url": c.directory["newAccount"]}).encode())
    raw = base64.urlsafe_b64decode(key2 + "=")
    sig = b64(hmac.new(raw, f"{prot}.{payload}".encode(), hashlib.sha256).digest())
    problem(
        c.register(externalAccountBinding={"protected": prot, "payload": payload, "signature": sig}),
        "unauthorized",
        403,
    )


# ---------------------------------------------------------------------- orders


@pytest.mark.parametrize(
    ("ident", "kind"),
    [
        ({"type": "dns", "value": "forbidden.example.com"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "bad_name.example.com"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "-x.example.com"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "localhost"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "a.*.example.com"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "10.0.0.1"}, "rejectedIdentifier"),
        ({"type": "dns", "value": "x" * 64 + ".example.com"}, "rejectedIdentifier"),
        ({"type": "ip", "value": "10.0.0.1"}, "rejectedIdentifier"),
        ({"type": "ip", "value": "169.254.169.254"}, "rejectedIdentifier"),
        ({"type": "ip", "value": "999.1.1.1"}, "malformed"),
        ({"type": "email", "value": "a@example.com"}, "unsupportedIdentifier"),
        ({"type": "dns"}, "malformed"),
    ],
)
def test_forbidden_or_malformed_identifiers(registered: ACMETestClient, ident: dict, kind: str) -> None:
    problem(registered.post(_order_url(registered), {"identifiers": [ident]}), kind, 400)


def test_several_rejected_identifiers_give_subproblems(registered: ACMETestClient) -> None:
    body = problem(
        registered.post(
            _order_url(registered),
            {
                "identifiers": [
                    {"type": "dns", "value": "forbidden.example.com"},
                    {"type": "ip", "value": "10.1.1.1"},
                    {"type": "dns", "value": "ok.example.com"},
                ]
            },
        ),
        "rejectedIdentifier",
        400,
    )
    subs = body["subproblems"]
    assert sorted(s["identifier"]["value"] for s in subs) == ["10.1.1.1", "forbidden.example.com"]
    assert all(s["type"] == P + "rejectedIdentifier" for s in subs)


def test_wildcard_needs_dns01(app) -> None:  # type: ignore[no-untyped-def]
    c = ACMETestClient(app, base="http://localhost/acme/httponly")
    c.register()
    problem(
        c.post(c.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "*.example.com"}]}),
        "rejectedIdentifier",
        400,
    )


def test_loopback_refused_unless_allowed(app) -> None:  # type: ignore[no-untyped-def]
    c = ACMETestClient(app, base="http://localhost/acme/strict")
    c.register()
    problem(
        c.post(c.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}),
        "rejectedIdentifier",
        400,
    )
    problem(
        c.post(c.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "::1"}]}), "rejectedIdentifier", 400
    )


def test_empty_and_bad_order_payloads(registered: ACMETestClient) -> None:
    url = _order_url(registered)
    problem(registered.post(url, {"identifiers": []}), "malformed", 400)
    problem(registered.post(url, {}), "malformed", 400)
    problem(registered.post(url, None), "malformed", 400)
    problem(
        registered.post(url, {"identifiers": [{"type": "ip", "value": "127.0.0.1"}], "notBefore": "yesterday"}),
        "malformed",
        400,
    )
    problem(
        registered.post(url, {"identifiers": [{"type": "ip", "value": "127.0.0.1"}], "replaces": "nonsense"}),
        "malformed",
        400,
    )


# ---------------------------------------------------------------------- finalize


def _ready_order(c: ACMETestClient, responder: HTTP01Responder, names: list[str]) -> dict:
    idents = [{"type": "ip" if n[0].isdigit() or ":" in n else "dns", "value": n} for n in names]
    order = c.post(_order_url(c), {"identifiers": idents}).get_json()
    for au in order["authorizations"]:
        authz = c.post(au, None).get_json()
        ch = next(x for x in authz["challenges"] if x["type"] == "http-01")
        responder.tokens[ch["token"]] = c.key_authorization(ch["token"])
        got = c.post(ch["url"], {}).get_json()
        assert got["status"] == "valid", got
    return order


def test_finalize_before_authorizations_valid(registered: ACMETestClient) -> None:
    order = registered.post(_order_url(registered), {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    _, csr = make_csr(["127.0.0.1"])
    body = problem(registered.post(order.get_json()["finalize"], {"csr": b64(csr)}), "orderNotReady", 403)
    assert "pending" in body["detail"]


def test_csr_must_match_order(registered: ACMETestClient, responder: HTTP01Responder) -> None:
    order = _ready_order(registered, responder, ["127.0.0.1", "www.example.com"])
    fin = order["finalize"]
    cases = [
        make_csr(["127.0.0.1"])[1],  # missing a name
        make_csr(["127.0.0.1", "www.example.com", "x.example.com"])[1],  # extra name
        make_csr(["127.0.0.1", "www.example.com"], cn="other.example.com")[1],  # CN not in order
        make_csr(["127.0.0.1", "www.example.com"], key=rsa.generate_private_key(65537, 1024))[1],
        make_csr(["127.0.0.1", "www.example.com"], key=ec.generate_private_key(ec.SECP256K1()))[1],
        make_csr(["127.0.0.1", "www.example.com"], key=registered.key)[1],  # account key reused
        b"\x30\x03\x02\x01\x00",
    ]
    for der in cases:
        problem(registered.post(fin, {"csr": b64(der)}), "badCSR", 400)
    # a CSR whose signature is broken
    der = bytearray(make_csr(["127.0.0.1", "www.example.com"])[1])
    der[-5] ^= 0xFF
    problem(registered.post(fin, {"csr": b64(bytes(der))}), "badCSR", 400)
    problem(registered.post(fin, {"csr": 5}), "malformed", 400)
    problem(registered.post(fin, {}), "malformed", 400)
    # the order is still ready: a right CSR works after all the wrong ones
    _, good = make_csr(["www.example.com", "127.0.0.1"], cn="www.example.com")
    r = registered.post(fin, {"csr": b64(good)})
    assert r.status_code == 200 and r.get_json()["status"] == "valid"
    problem(registered.post(fin, {"csr": b64(good)}), "orderNotReady", 403)  # no second certificate


@pytest.fixture
def allow_issue(ca: TestCA):  # type: ignore[no-untyped-def]
    yield
    ca.issued.clear()


test_csr_must_match_order = pytest.mark.usefixtures("allow_issue")(test_csr_must_match_order)


# ---------------------------------------------------------------------- revocation


@pytest.mark.usefixtures("allow_issue")
def test_bad_revocation_requests(registered: ACMETestClient, responder: HTTP01Responder) -> None:
    order = _ready_order(registered, responder, ["127.0.0.1"])
    _, csr = make_csr(["127.0.0.1"])
    order = registered.post(order["finalize"], {"csr": b64(csr)}).get_json()
    pem = registered.post(order["certificate"], None).data
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    leaf = x509.load_pem_x509_certificates(pem)[0]
    der = b64(leaf.public_bytes(serialization.Encoding.DER))
    url = registered.directory["revokeCert"]
    for reason in (2, 6, 7, 8, 9, 10, 11, -1, "1", True):
        problem(registered.post(url, {"certificate": der, "reason": reason}), "badRevocationReason", 400)
    problem(registered.post(url, {"certificate": "AAAA"}), "malformed", 400)
    problem(registered.post(url, {"certificate": 5}), "malformed", 400)
    # a certificate this CA never issued
    other_key = ec.generate_private_key(ec.SECP256R1())
    foreign = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(leaf.issuer)
        .public_key(other_key.public_key())
        .serial_number(leaf.serial_number)
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
        .sign(other_key, hashes.SHA256())
    )
    problem(
        registered.post(url, {"certificate": b64(foreign.public_bytes(serialization.Encoding.DER))}), "malformed", 404
    )
