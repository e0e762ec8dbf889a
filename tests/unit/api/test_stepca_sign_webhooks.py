"""POST /sign with step-ca webhooks (issue 15 item 5), against a real webhook server on loopback.

An ENRICHING hook's data shapes the certificate through `.Webhooks.<name>` in the template; an
AUTHORIZING hook sees the certificate and allows or denies it; the server verifies the HMAC header
as a step-ca webhook server does. A denial is a 403 and an unreachable or slow hook a 503, with
no certificate recorded and the token still unused.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.errors import ConfigError
from shared.runtime import build_services
from tests.helpers import make_csr, mint_sign_token
from tests.unit.api.test_stepca_sign import rows
from tests.webhook_receiver import SECRET_B64, Receiver, answer, hook, raw, webhook_receiver

TEMPLATE = """{
	"subject": {"commonName": {{ toJson .Subject.CommonName }}, "organizationalUnit": {{ toJson .Webhooks.inventory.team }}},
	"sans": {{ toJson (append .SANs (dict "type" "dns" "value" .Webhooks.inventory.alias)) }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["serverAuth", "clientAuth"]
}"""
NO_ROWS = {"certificates": 0, "endpoints": 0, "used_tokens": 0, "events": 0}


def configure(authority_dir: Path, options: dict[str, Any]) -> Client:
    path = authority_dir / "config.json"
    config = json.loads(path.read_text())
    config["authority"]["provisioners"][0]["options"] = options
    path.write_text(json.dumps(config))
    services = build_services(Settings.load(path))
    return Client(CirrusApp(services, mounts=default_mounts(services)))


def sign(api: Client, authority_dir: Path, name: str = "app.example.com", **extra: Any) -> Any:
    csr, _ = make_csr(name, [name])
    return api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name), **extra})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def hooks(receiver: Receiver, **authorize: Any) -> dict[str, Any]:
    return {
        "x509": {"template": TEMPLATE},
        "webhooks": [
            hook("inventory", receiver.base + "/enrich/{{ .Token.sub }}", "ENRICHING",
                 basicAuth={"username": "cirrus", "password": "pw-1"}),
            hook("gate", receiver.base + "/authorize", "AUTHORIZING", bearerToken="tok-123", certType="X509",
                 **authorize),
        ],
    }


def test_enriched_and_authorized_certificate(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/enrich/"] = answer(True, {"team": "payments", "alias": "app.payments.internal"})
    receiver.routes["/authorize"] = answer(True)
    api = configure(authority_dir, hooks(receiver))
    r = sign(api, authority_dir)
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    # The enrichment's data, through the template, is in the certificate.
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "payments"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com", "app.payments.internal"]

    enrich, gate = receiver.seen
    assert enrich.signature_ok and gate.signature_ok  # the server checked the HMAC of the exact bytes
    assert enrich.path == "/enrich/app.example.com"  # the URL is a template over the data
    assert enrich.headers["authorization"] == "Basic Y2lycnVzOnB3LTE="
    assert gate.headers["authorization"] == "Bearer tok-123"
    assert enrich.headers["x-smallstep-webhook-id"] != gate.headers["x-smallstep-webhook-id"]
    assert enrich.headers["content-type"] == "application/json" and enrich.headers["x-request-id"]
    body = enrich.json()
    assert body["provisionerName"] == "admin" and body["timestamp"].endswith("Z")
    request = body["x509CertificateRequest"]
    assert request["dnsNames"] == ["app.example.com"] and request["subject"]["commonName"] == "app.example.com"
    assert request["publicKeyAlgorithm"] == "ECDSA" and request["publicKey"] and request["raw"]
    assert "ott" not in enrich.body.decode() and "x509Certificate" not in body  # the token is never sent
    # The authorizing hook saw the certificate the client received.
    seen_cert = gate.json()["x509Certificate"]
    assert seen_cert["dnsNames"] == ["app.example.com", "app.payments.internal"]
    assert seen_cert["subject"]["organizationalUnit"] == ["payments"]
    assert seen_cert["serialNumber"] == cert.serial_number
    assert seen_cert["extKeyUsage"] == ["serverAuth", "clientAuth"] and seen_cert["keyUsage"] == ["digitalSignature"]
    assert rows(authority_dir)["certificates"] == 1


def test_a_denying_authorizing_hook_is_a_403_and_no_certificate(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/enrich/"] = answer(True, {"team": "payments", "alias": "app.payments.internal"})
    receiver.routes["/authorize"] = answer(False, error={"code": "policy", "message": "payments may not use app"})
    api = configure(authority_dir, hooks(receiver))
    r = sign(api, authority_dir)
    assert r.status_code == 403, r.text
    assert r.get_json() == {"status": 403, "message": "payments may not use app (policy)"}
    assert rows(authority_dir) == NO_ROWS


def test_a_denying_enriching_hook_is_a_403_before_anything_else(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/enrich/"] = answer(False)
    receiver.routes["/authorize"] = answer(True)
    api = configure(authority_dir, hooks(receiver))
    r = sign(api, authority_dir)
    assert r.status_code == 403, r.text
    assert r.get_json()["message"] == "webhook server did not allow request"
    assert [s.path for s in receiver.seen] == ["/enrich/app.example.com"]  # never reached the authorizing hook
    assert rows(authority_dir) == NO_ROWS


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_hook_is_a_503_and_nothing_recorded(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/enrich/"] = answer(True, {"team": "payments", "alias": "app.payments.internal"})
    options = hooks(receiver)
    options["webhooks"][1]["url"] = f"http://127.0.0.1:{_closed_port()}/authorize"
    api = configure(authority_dir, options)
    r = sign(api, authority_dir)
    assert r.status_code == 503, r.text
    assert r.get_json() == {"status": 503, "message": "webhook gate: unreachable"}
    assert rows(authority_dir) == NO_ROWS


def test_a_slow_hook_times_out_as_a_503(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/enrich/"] = raw(200, b'{"allow": true, "data": {}}', delay=2.0)
    api = configure(authority_dir, hooks(receiver) | {"webhooks": [
        hook("inventory", receiver.base + "/enrich/x", "ENRICHING", timeout=0.3)]})
    r = sign(api, authority_dir)
    assert r.status_code == 503, r.text
    assert r.get_json()["message"] == "webhook inventory: timed out"
    assert rows(authority_dir) == NO_ROWS


def test_a_wrong_secret_is_refused_by_the_server_and_so_by_the_ca(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/enrich/"] = answer(True, {"team": "t", "alias": "a.example.com"})
    receiver.routes["/authorize"] = answer(True)
    options = hooks(receiver)
    options["webhooks"][0]["secret"] = "b3RoZXItc2VjcmV0LW9mLWVub3VnaC1sZW5ndGg="
    api = configure(authority_dir, options)
    r = sign(api, authority_dir)
    assert r.status_code == 403 and r.get_json()["message"] == "webhook inventory: answered HTTP 401"
    assert not receiver.seen[0].signature_ok
    assert rows(authority_dir) == NO_ROWS


def test_hooks_of_another_cert_type_do_not_run(receiver: Receiver, authority_dir: Path) -> None:
    api = configure(authority_dir, {"webhooks": [hook("ssh-only", receiver.base + "/x", "AUTHORIZING", certType="SSH")]})
    r = sign(api, authority_dir)
    assert r.status_code == 201, r.text
    assert receiver.seen == []


def test_authorizing_without_a_template_sees_the_default_profile(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/authorize"] = answer(True)
    api = configure(authority_dir, {"webhooks": [hook("gate", receiver.base + "/authorize", "AUTHORIZING")]})
    r = sign(api, authority_dir)
    assert r.status_code == 201, r.text
    seen = receiver.seen[0].json()["x509Certificate"]
    assert seen["dnsNames"] == ["app.example.com"] and seen["subject"]["commonName"] == "app.example.com"
    assert [e["id"] for e in seen["extensions"]] == ["1.3.6.1.4.1.37476.9000.64.1"]  # step's provisioner extension


@pytest.mark.parametrize(("entry", "says"), [
    ({"kind": "NOTIFYING"}, "kind must be ENRICHING or AUTHORIZING"),
    ({"url": "http://hooks.example.com/x"}, "must use https"),
    ({"url": "https://user:pw@hooks.example.com/x"}, "username or password"),
    ({"secret": "not base64!"}, "secret must be standard base64"),
    ({"secret": "c2hvcnQ="}, "at least 16 bytes"),
    ({"bearerToken": "t", "basicAuth": {"username": "u", "password": "p"}}, "not both"),
    ({"certType": "PGP"}, "certType must be"),
    ({"timeout": 600}, "timeout must be"),
    ({"url": "https://h.example.com/{{ .Token.sub "}, "url:"),
    ({"url": "{{ .Insecure.User.url }}"}, "template only after its scheme, host and port"),
    ({"url": "https://{{ .Token.sub }}.hooks.example.com/x"}, "template only after its scheme, host and port"),
    ({"url": "http://hooks.example.com/{{ .Token.sub }}"}, "must use https"),
])
def test_bad_webhook_config_is_refused_at_load_naming_the_hook(authority_dir: Path, entry: dict[str, Any],
                                                               says: str) -> None:
    bad = hook("inventory", "https://hooks.example.com/x", "ENRICHING") | entry
    with pytest.raises(ConfigError) as caught:
        configure(authority_dir, {"webhooks": [bad]})
    assert "'inventory'" in str(caught.value) and says in str(caught.value)
    assert SECRET_B64 not in str(caught.value)


def test_two_hooks_with_one_name_are_refused(authority_dir: Path) -> None:
    one = hook("inventory", "https://hooks.example.com/x", "ENRICHING")
    with pytest.raises(ConfigError, match="two webhooks are named 'inventory'"):
        configure(authority_dir, {"webhooks": [one, one]})


def test_secrets_stay_out_of_repr(authority_dir: Path) -> None:
    from shared.webhooks.config import load_one

    loaded = load_one("p", hook("h", "https://hooks.example.com/x", "ENRICHING", bearerToken="tok-secret"), 0)
    assert "tok-secret" not in repr(loaded) and "secret=" not in repr(loaded)


def test_acme_issuance_runs_the_hooks_without_a_token(receiver: Receiver, authority_dir: Path) -> None:
    """ACME finalize (`issue_for_identifiers`) calls the ACME provisioner's hooks as step-ca does."""
    from shared.errors import Forbidden

    path = authority_dir / "config.json"
    config = json.loads(path.read_text())
    acme = next(p for p in config["authority"]["provisioners"] if p["type"] == "ACME")
    acme["options"] = {"x509": {"template": TEMPLATE}, "webhooks": [
        hook("inventory", receiver.base + "/enrich", "ENRICHING"),
        hook("gate", receiver.base + "/authorize", "AUTHORIZING")]}
    path.write_text(json.dumps(config))
    services = build_services(Settings.load(path))
    receiver.routes["/enrich"] = answer(True, {"team": "web", "alias": "www.example.com"})
    receiver.routes["/authorize"] = answer(True)
    pem, _ = make_csr("app.example.com", ["app.example.com"])
    csr = x509.load_pem_x509_csr(pem.encode())
    issued = services.issuing().issue_for_identifiers(provisioner_name=acme["name"], csr=csr,
                                                      names=["app.example.com"])
    san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com", "www.example.com"]
    assert receiver.seen[0].json()["provisionerName"] == acme["name"]
    receiver.routes["/authorize"] = answer(False)
    with pytest.raises(Forbidden, match="did not allow"):
        services.issuing().issue_for_identifiers(provisioner_name=acme["name"], csr=csr, names=["app.example.com"])
    assert rows(authority_dir)["certificates"] == 1
    services.close()


def test_a_url_template_cannot_inject_a_header(receiver: Receiver, authority_dir: Path) -> None:
    """The rendered URL is checked again: request data cannot smuggle CR LF into the hook's request."""
    receiver.routes["/"] = answer(True, {})
    api = configure(authority_dir, {"webhooks": [
        hook("inventory", receiver.base + "/enrich/{{ .Insecure.User.site }}", "ENRICHING")]})
    r = sign(api, authority_dir, templateData={"site": "berlin"})
    assert r.status_code == 201, r.text
    assert receiver.seen[0].path == "/enrich/berlin"
    r = sign(api, authority_dir, templateData={"site": "x HTTP/1.1\r\nX-Injected: 1\r\n\r\n"})
    assert r.status_code == 403, r.text
    assert r.get_json()["message"] == (
        "webhook inventory: its url must be at most 2048 printable characters without spaces")
    assert len(receiver.seen) == 1 and rows(authority_dir)["certificates"] == 1


def test_enriched_names_meet_the_provisioners_policy(receiver: Receiver, authority_dir: Path) -> None:
    """A name the template takes from a hook's data is held to the same policy as the token's names."""
    path = authority_dir / "config.json"
    config = json.loads(path.read_text())
    config["authority"]["provisioners"][0]["policy"] = {"x509": {"allow": {"dns": ["*.example.com"]}}}
    path.write_text(json.dumps(config))
    receiver.routes["/enrich/"] = answer(True, {"team": "payments", "alias": "app.payments.internal"})
    receiver.routes["/authorize"] = answer(True)
    api = configure(authority_dir, hooks(receiver))
    r = sign(api, authority_dir)
    assert r.status_code == 403, r.text
    assert "app.payments.internal" in r.get_json()["message"]
    assert [s.path for s in receiver.seen] == ["/enrich/app.example.com"]  # refused before signing
    receiver.routes["/enrich/"] = answer(True, {"team": "payments", "alias": "pay.example.com"})
    assert sign(api, authority_dir).status_code == 201
    assert rows(authority_dir)["certificates"] == 1


def test_a_malformed_enriched_name_is_a_400(receiver: Receiver, authority_dir: Path) -> None:
    receiver.routes["/enrich/"] = answer(True, {"team": "payments", "alias": "-bad-.example.com"})
    receiver.routes["/authorize"] = answer(True)
    api = configure(authority_dir, hooks(receiver))
    r = sign(api, authority_dir)
    assert r.status_code == 400, r.text
    assert "'-bad-.example.com' is not a DNS name" in r.get_json()["message"]
    assert rows(authority_dir) == NO_ROWS


def test_the_provisioner_listing_shows_hooks_without_their_secrets(receiver: Receiver, authority_dir: Path) -> None:
    """GET /provisioners is public: a hook is listed as step-ca lists one (no secret, token or password)."""
    receiver.routes["/enrich/"] = answer(True, {"team": "t", "alias": "a.example.com"})
    api = configure(authority_dir, hooks(receiver))
    listed = api.get("/provisioners").get_json()["provisioners"][0]["options"]["webhooks"]
    text = json.dumps(listed)
    assert SECRET_B64 not in text and "tok-123" not in text and "pw-1" not in text
    assert [h["name"] for h in listed] == ["inventory", "gate"]
    assert set(listed[1]) == {"id", "name", "url", "kind", "certType"}
    sign(api, authority_dir)  # the id listed is the one the hook is sent
    assert receiver.seen[0].headers["x-smallstep-webhook-id"] == listed[0]["id"]
