"""POST /sign against an https webhook server that requires a TLS client certificate, as step-ca
presents one (`shared.webhooks.identity`).

The receiver is real (tests/webhook_receiver.py over `ssl`): its server certificate is issued by
the authority (`cirrus up`'s own), and it refuses any handshake without a client certificate that
chains to the authority's root. The authority's certificate gets the ENRICHING hook's data into the
certificate; with `disableTLSClientAuth` the handshake is refused and the client gets the
documented 503, nothing issued, the token unused. A server whose certificate the CA does not trust,
and garbage answers over mutual TLS, are refused the same ways as over http.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.config import Settings
from shared.runtime import build_services
from shared.server import issue_server_certificate
from tests.helpers import pkilint_errors
from tests.unit.api.test_stepca_sign import rows
from tests.unit.api.test_stepca_sign_webhooks import NO_ROWS, TEMPLATE, configure, sign
from tests.webhook_receiver import Receiver, answer, hook, raw, webhook_receiver

DATA = {"team": "payments", "alias": "app.payments.internal"}


@contextmanager
def mtls_receiver(authority_dir: Path, tmp_path: Path, *, require_client: bool = True) -> Iterator[Receiver]:
    """An https receiver serving the authority's own server certificate, requiring (or not) a
    client certificate that chains to the authority's root."""
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        cert_path, key_path, _ = issue_server_certificate(services, tmp_path)
    finally:
        services.close()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(authority_dir / "certs" / "root_ca.crt")
    with webhook_receiver(context) as receiver:
        yield receiver


def options(receiver: Receiver, **extra: object) -> dict[str, object]:
    return {"x509": {"template": TEMPLATE},
            "webhooks": [hook("inventory", receiver.base + "/enrich/{{ .Token.sub }}", "ENRICHING", **extra)]}


def test_a_hook_requiring_a_client_certificate_is_shown_the_authoritys(authority_dir: Path, tmp_path: Path) -> None:
    with mtls_receiver(authority_dir, tmp_path) as receiver:
        receiver.routes["/enrich/"] = answer(True, DATA)
        api = configure(authority_dir, options(receiver))
        first = sign(api, authority_dir)
        second = sign(api, authority_dir, "db.example.com")
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    issued = x509.load_pem_x509_certificate(first.get_json()["crt"].encode())
    assert issued.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "payments"
    assert receiver.refused == [] and [s.signature_ok for s in receiver.seen] == [True, True]

    # What the hook was shown: one certificate per instance (both calls), step-ca's subject and names,
    # signed by the intermediate, for client authentication only, a day long.
    peers = {s.peer for s in receiver.seen}
    assert len(peers) == 1 and None not in peers
    client = x509.load_der_x509_certificate(peers.pop())  # type: ignore[arg-type]
    config = json.loads((authority_dir / "config.json").read_text())
    intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    client.verify_directly_issued_by(intermediate)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == config.get(
        "commonName", "Cirrus Online CA")
    sans = client.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n.value) for n in sans} == set(config.get("dnsNames", ["localhost", "127.0.0.1", "::1"]))
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.not_valid_after_utc - client.not_valid_before_utc == dt.timedelta(hours=24, minutes=1)
    # RFC 5280 lints pass, but for the test config's one-label dnsName "localhost" (pkilint's domain
    # check wants a dot; `cirrus up`'s server certificate carries the same name).
    findings = pkilint_errors(client.public_bytes(serialization.Encoding.DER))
    assert [f for f in findings if not f.endswith("dNSName: pkix.invalid_domain_name_syntax")] == []
    # Not a recorded issuance: the store holds the two certificates the clients asked for, no more.
    assert rows(authority_dir)["certificates"] == 2


def test_disable_tls_client_auth_sends_none_and_the_refused_handshake_is_a_503(authority_dir: Path,
                                                                              tmp_path: Path) -> None:
    with mtls_receiver(authority_dir, tmp_path) as receiver:
        receiver.routes["/enrich/"] = answer(True, DATA)
        api = configure(authority_dir, options(receiver, disableTLSClientAuth=True))
        r = sign(api, authority_dir)
    assert r.status_code == 503, r.text
    assert r.get_json() == {"status": 503, "message": "webhook inventory: unreachable"}
    assert receiver.seen == [] and receiver.refused, "the server must have refused the handshake"
    assert rows(authority_dir) == NO_ROWS  # nothing issued, and the token is still unused


def test_a_hook_server_the_ca_does_not_trust_is_a_503(authority_dir: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")])
    now = dt.datetime.now(dt.UTC)
    self_signed = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
                   .sign(key, hashes.SHA256()))  # fmt: skip
    pem = tmp_path / "impostor.pem"
    pem.write_bytes(self_signed.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    with webhook_receiver(context) as receiver:
        receiver.routes["/enrich/"] = answer(True, DATA)
        api = configure(authority_dir, options(receiver))
        r = sign(api, authority_dir)
    assert r.status_code == 503, r.text
    assert r.get_json() == {"status": 503, "message": "webhook inventory: unreachable"}
    assert receiver.seen == []
    assert rows(authority_dir) == NO_ROWS


@pytest.mark.parametrize("route", [
    raw(200, b"\x00\xff not json"),
    raw(200, b'{"allow": true, "data": "' + b"x" * (70 * 1024) + b'"}'),
    raw(200, b'{"allow": "yes"}'),
], ids=["garbage", "huge", "not-step-ca"])
def test_a_bad_answer_over_mutual_tls_is_a_403(authority_dir: Path, tmp_path: Path, route: object) -> None:
    with mtls_receiver(authority_dir, tmp_path) as receiver:
        receiver.routes["/enrich/"] = route  # type: ignore[assignment]
        api = configure(authority_dir, options(receiver))
        r = sign(api, authority_dir)
    assert r.status_code == 403, r.text
    assert len(receiver.seen) == 1 and receiver.seen[0].peer is not None
    assert rows(authority_dir) == NO_ROWS
