"""Issue 12, items 12 and 16: hostile details at the ACME boundary, one test per refusal.

Each case here was answered wrongly before (a 500, a 200, a lenient parse, a
revocation that should have been refused); each now gets a problem document.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.acme.challenges.addresses import address_allowed
from shared.acme.server import ACMEServer
from shared.model import CertificateKind, CertificateRecord, ProvisionerRef
from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    ACMETestClient,
    HTTP01Responder,
    TestCA,
    b64,
    build_server,
    make_csr,
    provisioner,
    wsgi_app,
)
from tests.unit.acme.test_acme_flow import issue

pytestmark = pytest.mark.hostile  # a 500 from the generic handler fails these tests

P = "urn:ietf:params:acme:error:"
IP = [{"type": "ip", "value": "127.0.0.1"}]


def problem(r: Any, kind: str, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.data)
    assert r.mimetype == "application/problem+json"
    body: dict[str, Any] = r.get_json()
    assert body["type"] == P + kind, body
    return body


@pytest.fixture
def registered(client: ACMETestClient) -> ACMETestClient:
    assert client.register().status_code == 201
    return client


# ---------------------------------------------------------------- item 12: the alternate-chain index


@pytest.mark.parametrize("index", ["%C2%B2", "%D9%A1", "01", "0", "3", "1000", "99999999999999999999", "-1"])
def test_alternate_chain_index_is_ascii_digits_only(
    registered: ACMETestClient, responder: HTTP01Responder, index: str
) -> None:
    _, order = issue(registered, responder, IP)
    problem(registered.post(order["certificate"] + "/" + index, None), "malformed", 404)


def test_alternate_chain_one_is_served(registered: ACMETestClient, responder: HTTP01Responder) -> None:
    _, order = issue(registered, responder, IP)
    r = registered.post(order["certificate"] + "/1", None)
    assert r.status_code == 200 and r.data.startswith(b"-----BEGIN CERTIFICATE-----")


# ---------------------------------------------------------------- item 16: revokeCert needs every identifier


def _record_foreign(
    store: MemoryStore, ca: TestCA, sans: list[x509.GeneralName] | None, *, cn: str | None = None
) -> bytes:
    """A certificate of this CA for `sans` (issued through another front, e.g. the step API), recorded."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []))
        .issuer_name(ca.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if sans is not None:
        b = b.add_extension(x509.SubjectAlternativeName(sans), False)
    cert = b.sign(ca.int_key, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    store.record_issuance(
        CertificateRecord(
            serial=str(cert.serial_number),
            authority_id="test",
            kind=CertificateKind.X509,
            der=der,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            provisioner=ProvisionerRef("step", "step", "JWK"),
            endpoint_id="ep-foreign",
            subject_key="foreign",
            common_name=cn or "",
            sans=(),
            issued_at=now,
            renewed_from=None,
            operation="sign",
        )
    )
    return der


LOOP = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))


@pytest.mark.parametrize(
    ("sans", "cn"),
    [
        pytest.param([LOOP, x509.RFC822Name("ops@example.com")], None, id="email-san"),
        pytest.param([LOOP, x509.UniformResourceIdentifier("spiffe://example.com/x")], None, id="uri-san"),
        pytest.param([LOOP, x509.DNSName("not-authorized.example.com")], None, id="unauthorized-dns"),
        pytest.param([LOOP, x509.IPAddress(ipaddress.ip_address("127.0.0.2"))], None, id="unauthorized-ip"),
        pytest.param([LOOP], "other.example.com", id="cn-not-a-san"),
        pytest.param([LOOP, x509.DirectoryName(x509.Name([]))], None, id="directory-name-san"),
        pytest.param(None, "127.0.0.1", id="no-san-extension"),
    ],
)
def test_revoke_by_authorization_needs_every_identifier(
    registered: ACMETestClient,
    responder: HTTP01Responder,
    store: MemoryStore,
    ca: TestCA,
    sans: list[x509.GeneralName] | None,
    cn: str | None,
) -> None:
    issue(registered, responder, IP)  # the account holds a valid authorization for 127.0.0.1 only
    der = _record_foreign(store, ca, sans, cn=cn)
    problem(registered.post(registered.directory["revokeCert"], {"certificate": b64(der)}), "unauthorized", 403)


def test_revoke_by_authorization_of_every_identifier_succeeds(
    registered: ACMETestClient, responder: HTTP01Responder, store: MemoryStore, ca: TestCA
) -> None:
    issue(registered, responder, IP)
    der = _record_foreign(store, ca, [LOOP], cn="127.0.0.1")
    r = registered.post(registered.directory["revokeCert"], {"certificate": b64(der)})
    assert r.status_code == 200, r.get_json()


# ---------------------------------------------------------------- item 16: deactivated key, POST-as-GET


def test_new_account_with_a_deactivated_accounts_key_is_unauthorized(registered: ACMETestClient) -> None:
    r = registered.post(registered.kid, {"status": "deactivated"})  # type: ignore[arg-type]
    assert r.status_code == 200 and r.get_json()["status"] == "deactivated"
    r = registered.post(registered.directory["newAccount"], {"termsOfServiceAgreed": True}, kid=None)
    problem(r, "unauthorized", 401)
    r = registered.post(registered.directory["newAccount"], {"onlyReturnExisting": True}, kid=None)
    problem(r, "unauthorized", 401)


@pytest.mark.parametrize("resource", ["order", "certificate", "alternate", "orders"])
def test_post_as_get_only_resources_refuse_a_payload(
    registered: ACMETestClient, responder: HTTP01Responder, resource: str
) -> None:
    order_url, order = issue(registered, responder, IP)
    url = {
        "order": order_url,
        "certificate": order["certificate"],
        "alternate": order["certificate"] + "/1",
        "orders": str(registered.kid) + "/orders",
    }[resource]
    for payload in ({}, {"status": "valid"}):
        problem(registered.post(url, payload), "malformed", 400)
    assert registered.post(url, None).status_code == 200  # POST-as-GET still reads it


# ---------------------------------------------------------------- item 16: headers at the boundary


@pytest.fixture
def server(store: MemoryStore, ca: TestCA) -> ACMEServer:
    return build_server(store, ca, [provisioner("acme")])


def _environ(**extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/acme/acme/directory",
        "SERVER_NAME": "ca.example",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        "REMOTE_ADDR": "192.0.2.1",
        "HTTP_HOST": "ca.example",
    }
    env.update(extra)
    return env


BAD_HOSTS = [
    "a.example,b.example",
    "a.example, b.example",
    "exa mple",
    "[::1",
    "ca.example:99999",
    "ca.example:²",
    "",
    "ca.example:",
    "user@ca.example",
    "ca.example/x",
]


@pytest.mark.parametrize("host", BAD_HOSTS)
def test_duplicate_or_invalid_host_is_400_on_the_cirrus_up_path(server: ACMEServer, host: str) -> None:
    status, headers, body = server.handle_environ(_environ(HTTP_HOST=host), "acme", "/directory")
    assert status == 400 and dict(headers)["Content-Type"] == "application/problem+json"
    assert b"https:/acme" not in body and b'"type":"urn:ietf:params:acme:error:malformed"' in body


@pytest.mark.parametrize("host", [h for h in BAD_HOSTS if h != "ca.example:99999"])  # the test client refuses it
def test_duplicate_or_invalid_host_is_400_on_the_functions_path(server: ACMEServer, host: str) -> None:
    from werkzeug.test import Client

    r = Client(wsgi_app(server)).get("/acme/acme/directory", environ_overrides={"HTTP_HOST": host})
    problem(r, "malformed", 400)
    assert b"https:/acme" not in r.data and b"http:/acme" not in r.data


def test_a_good_host_with_port_and_ipv6_literal_pass(server: ACMEServer) -> None:
    for host in ("ca.example:8443", "[::1]:8443", "127.0.0.1", "ca.example."):
        status, _, body = server.handle_environ(_environ(HTTP_HOST=host), "acme", "/directory")
        assert status == 200, (host, body)


@pytest.mark.parametrize("name", ["HTTP_X\x00Y", "HTTP_X Y", "HTTP_X:Y", "HTTP_\x7f"])
def test_bad_header_field_names_are_400(server: ACMEServer, name: str) -> None:
    status, _, body = server.handle_environ(_environ(**{name: "1"}), "acme", "/directory")
    assert status == 400 and b"header field name" in body
    from werkzeug.test import Client

    problem(Client(wsgi_app(server)).get("/acme/acme/directory", environ_overrides={name: "1"}), "malformed", 400)


# ---------------------------------------------------------------- item 16: newAccount per client address


def test_new_account_is_limited_per_client_address(store: MemoryStore, ca: TestCA) -> None:
    app = wsgi_app(build_server(store, ca, [provisioner("acme", accountsPerMinute=3)]))
    clients = [ACMETestClient(app) for _ in range(3)]
    assert [c.register().status_code for c in clients] == [201, 201, 201]
    over = ACMETestClient(app)
    r = over.register()
    problem(r, "rateLimited", 429)
    assert int(r.headers["Retry-After"]) >= 1
    assert clients[0].register().status_code == 200  # returning an existing account creates nothing: not limited

    def elsewhere(environ: dict[str, Any], start_response: Any) -> Any:
        environ["REMOTE_ADDR"] = "192.0.2.77"
        return app(environ, start_response)

    assert ACMETestClient(elsewhere).register().status_code == 201  # another client is not held by this limit


def test_ipv6_clients_are_counted_per_64() -> None:
    from shared.acme.ratelimit import client_key

    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("not an address") == "unknown"


# ---------------------------------------------------------------- item 16: IPv6 addresses embedding IPv4


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("2002:7f00:1::1", "127.0.0.1"),  # 6to4 of loopback
        ("2002:a00:1::", "10.0.0.1"),  # 6to4 of RFC 1918
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 of the metadata server
        ("64:ff9b::c0a8:101", "192.168.1.1"),
        ("64:ff9b:1::a00:1", "10.0.0.1"),  # RFC 8215 local-use NAT64
        ("::ffff:10.1.2.3", "10.1.2.3"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1"),  # Teredo, client 10.0.0.1 (obfuscated)
    ],
)
def test_ipv6_embedding_a_fenced_ipv4_is_refused(address: str, inner: str) -> None:
    from shared.acme.challenges.addresses import embedded_ipv4

    ip = ipaddress.IPv6Address(address)
    assert not address_allowed(ip, provisioner("strict", allowLoopback=False))
    assert str(embedded_ipv4(ip)) == inner


def test_ipv6_embedding_a_public_ipv4_is_allowed() -> None:
    prov = provisioner("strict", allowLoopback=False)
    assert address_allowed(ipaddress.IPv6Address("2002:808:808::1"), prov)
    # NAT64 lies in ::/8 (reserved): refused unless private targets are allowed, and then by what it embeds.
    private_ok = provisioner("p", allowLoopback=False, allowPrivateAddresses=True)
    assert address_allowed(ipaddress.IPv6Address("64:ff9b::808:808"), private_ok)
    assert not address_allowed(ipaddress.IPv6Address("64:ff9b::7f00:1"), private_ok)
    assert not address_allowed(ipaddress.IPv6Address("2002:7f00:1::1"), private_ok)
    assert address_allowed(ipaddress.IPv6Address("2606:4700::1111"), prov)


def test_new_order_for_a_6to4_loopback_is_rejected(app: Any) -> None:
    c = ACMETestClient(app, base="http://localhost/acme/strict")
    assert c.register().status_code == 201
    r = c.post(c.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "2002:7f00:1::1"}]})
    problem(r, "rejectedIdentifier", 400)


# ---------------------------------------------------------------- the CSR must match the order: one test per refusal


def _ready(c: ACMETestClient, responder: HTTP01Responder) -> dict[str, Any]:
    idents = [{"type": "ip", "value": "127.0.0.1"}, {"type": "dns", "value": "www.example.com"}]
    order: dict[str, Any] = c.post(c.directory["newOrder"], {"identifiers": idents}).get_json()
    for au in order["authorizations"]:
        ch = next(x for x in c.post(au, None).get_json()["challenges"] if x["type"] == "http-01")
        responder.tokens[ch["token"]] = c.key_authorization(ch["token"])
        assert c.post(ch["url"], {}).get_json()["status"] == "valid"
    return order


def _csr_with_email(names: list[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.RFC822Name("ops@example.com")]
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(sans), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def _bad_signature() -> bytes:
    der = bytearray(make_csr(["127.0.0.1", "www.example.com"])[1])
    der[-5] ^= 0xFF
    return bytes(der)


CSR_CASES = {
    "missing-a-name": lambda key: make_csr(["127.0.0.1"])[1],
    "extra-name": lambda key: make_csr(["127.0.0.1", "www.example.com", "x.example.com"])[1],
    "cn-not-in-order": lambda key: make_csr(["127.0.0.1", "www.example.com"], cn="other.example.com")[1],
    "email-san": lambda key: _csr_with_email(["127.0.0.1", "www.example.com"]),
    "account-key-reused": lambda key: make_csr(["127.0.0.1", "www.example.com"], key=key)[1],
    "secp256k1-key": lambda key: make_csr(["127.0.0.1", "www.example.com"], key=ec.generate_private_key(ec.SECP256K1()))[1],
    "broken-signature": lambda key: _bad_signature(),
    "not-a-csr": lambda key: b"\x30\x03\x02\x01\x00",
}


@pytest.mark.parametrize("case", sorted(CSR_CASES))
def test_finalize_refuses_a_csr_that_does_not_match(
    registered: ACMETestClient, responder: HTTP01Responder, ca: TestCA, case: str
) -> None:
    order = _ready(registered, responder)
    problem(registered.post(order["finalize"], {"csr": b64(CSR_CASES[case](registered.key))}), "badCSR", 400)
    assert not ca.issued
    _, good = make_csr(["www.example.com", "127.0.0.1"], cn="www.example.com")  # the order is still ready
    assert registered.post(order["finalize"], {"csr": b64(good)}).get_json()["status"] == "valid"


def test_client_address_behind_trusted_proxies_only() -> None:
    from shared.acme.ratelimit import client_address

    assert client_address("10.0.0.9", "203.0.113.5", 0) == "10.0.0.9"  # no proxy: the header is anyone's to send
    assert client_address("10.0.0.9", "1.2.3.4, 203.0.113.5", 1) == "203.0.113.5"  # the proxy's entry, not the client's
    assert client_address("10.0.0.9", "1.2.3.4, 203.0.113.5, 10.0.0.7", 2) == "203.0.113.5"
    assert client_address("10.0.0.9", "", 1) == "10.0.0.9"


def test_new_account_limit_behind_a_proxy_counts_the_forwarded_client(store: MemoryStore, ca: TestCA) -> None:
    app = wsgi_app(build_server(store, ca, [provisioner("acme", accountsPerMinute=1, trustedProxyHops=1)]))

    def via(client: str, spoof: str) -> Any:
        def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
            environ["HTTP_X_FORWARDED_FOR"] = f"{spoof}, {client}"
            return app(environ, start_response)

        return wrapped

    assert ACMETestClient(via("203.0.113.5", "1.1.1.1")).register().status_code == 201
    problem(ACMETestClient(via("203.0.113.5", "2.2.2.2")).register(), "rateLimited", 429)  # spoofed part ignored
    assert ACMETestClient(via("203.0.113.6", "2.2.2.2")).register().status_code == 201


# ---------------------------------------------------------------- revokeCert: one test per other refusal


def _issued_der(c: ACMETestClient, responder: HTTP01Responder) -> bytes:
    _, order = issue(c, responder, IP)
    leaf = x509.load_pem_x509_certificates(c.post(order["certificate"], None).data)[0]
    return leaf.public_bytes(serialization.Encoding.DER)


def test_revoke_refuses_a_reason_outside_the_allowed_set(registered: ACMETestClient, responder: HTTP01Responder) -> None:
    der = _issued_der(registered, responder)
    for reason in (2, 6, 7, 8, 9, 10, -1, "1", True, 1.0):
        r = registered.post(registered.directory["revokeCert"], {"certificate": b64(der), "reason": reason})
        problem(r, "badRevocationReason", 400)


def test_revoke_refuses_a_certificate_not_issued_here(registered: ACMETestClient, responder: HTTP01Responder, ca: TestCA) -> None:
    der = bytearray(_issued_der(registered, responder))
    der[-3] ^= 0x01  # same serial, other bytes (its signature): not the certificate on record
    problem(registered.post(registered.directory["revokeCert"], {"certificate": b64(bytes(der))}), "malformed", 404)


def test_revoke_refuses_bytes_that_are_not_a_certificate(registered: ACMETestClient) -> None:
    for junk in (b"", b"\x30\x00", b"not der"):
        problem(registered.post(registered.directory["revokeCert"], {"certificate": b64(junk)}), "malformed", 400)


def test_revoke_refuses_a_jws_key_that_is_not_the_certificates(
    registered: ACMETestClient, responder: HTTP01Responder
) -> None:
    der = _issued_der(registered, responder)
    stranger = ec.generate_private_key(ec.SECP256R1())
    r = registered.post(registered.directory["revokeCert"], {"certificate": b64(der)}, key=stranger, kid=None)
    problem(r, "unauthorized", 403)


def test_revoke_refuses_another_account_without_authorizations(
    app: Any, registered: ACMETestClient, responder: HTTP01Responder
) -> None:
    der = _issued_der(registered, responder)
    other = ACMETestClient(app)
    assert other.register().status_code == 201
    problem(other.post(other.directory["revokeCert"], {"certificate": b64(der)}), "unauthorized", 403)


def test_revoke_twice_is_already_revoked(registered: ACMETestClient, responder: HTTP01Responder) -> None:
    der = _issued_der(registered, responder)
    assert registered.post(registered.directory["revokeCert"], {"certificate": b64(der)}).status_code == 200
    problem(registered.post(registered.directory["revokeCert"], {"certificate": b64(der)}), "alreadyRevoked", 400)
