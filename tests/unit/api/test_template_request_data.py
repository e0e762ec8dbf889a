"""Template data from the request (issue 15): `.Insecure.User` is the sign request's `templateData`;
`.AuthorizationCrt` is the X5C leaf that authorized the token, with Go's field names; X5C webhook
requests carry `x5cCertificate` and `authorizationPrincipal` as step-ca's do."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import build_services
from shared.templates import Template
from shared.x509.authorization_crt import go_x509_certificate
from tests.helpers import make_csr, mint_sign_token
from tests.unit.api.test_stepca_sign import rows
from tests.unit.api.test_stepca_sign_webhooks import configure, sign
from tests.unit.provisioners import test_x5c
from tests.webhook_receiver import answer, hook, webhook_receiver

USER_TEMPLATE = """{
	"subject": {"commonName": {{ toJson .Subject.CommonName }}, "organizationalUnit": {{ toJson .Insecure.User.team }}},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"]
}"""
X5C_TEMPLATE = """{
	"subject": {"commonName": {{ toJson .Subject.CommonName }},
		"organization": {{ toJson .AuthorizationCrt.Subject.CommonName }},
		"organizationalUnit": [{{ toJson (printf "%v" .AuthorizationCrt.SerialNumber) }},
			{{ toJson (printf "%v" .AuthorizationCrt.NotAfter) }},
			{{ toJson (index .AuthorizationCrt.DNSNames 0) }}]},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"]
}"""


def _ou(cert_pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]


def test_insecure_user_is_the_requests_template_data(authority_dir: Path) -> None:
    api = configure(authority_dir, {"x509": {"template": USER_TEMPLATE}})
    r = sign(api, authority_dir, templateData={"team": "blue"})
    assert r.status_code == 201, r.text
    assert _ou(r.get_json()["crt"]) == ["blue"]
    r = sign(api, authority_dir)  # none given: an empty map, `<no value>` -> null -> no OU
    assert r.status_code == 201, r.text
    assert _ou(r.get_json()["crt"]) == []


def test_template_data_that_is_not_an_object_is_a_400(authority_dir: Path) -> None:
    api = configure(authority_dir, {"x509": {"template": USER_TEMPLATE}})
    for bad in (["team", "blue"], "team=blue", 7):
        r = sign(api, authority_dir, templateData=bad)
        assert r.status_code == 400 and r.get_json()["message"] == "templateData must be a JSON object"
    assert rows(authority_dir)["certificates"] == 0


def test_template_data_with_a_number_beyond_float64_is_a_400(authority_dir: Path) -> None:
    """Go's decoder refuses such a number; it was an OverflowError here (a 500)."""
    api = configure(authority_dir, {"x509": {"template": USER_TEMPLATE}})
    csr, _ = make_csr("app.example.com", ["app.example.com"])
    body = ('{"csr": %s, "ott": "%s", "templateData": {"team": %s}}'
            % (json.dumps(csr), mint_sign_token(authority_dir, "app.example.com"), "9" * 400))
    r = api.post("/1.0/sign", data=body, content_type="application/json")
    assert r.status_code == 400, r.text
    assert "data number out of range" in r.get_json()["message"]
    assert rows(authority_dir)["certificates"] == 0


def _x5c_api(authority_dir: Path, options: dict[str, Any]) -> Client:
    path = authority_dir / "config.json"
    cfg = json.loads(path.read_text())
    root_pem = test_x5c.pki()["root"].public_bytes(serialization.Encoding.PEM)
    cfg["authority"]["provisioners"].append(
        {"type": "X5C", "name": "devices", "roots": base64.b64encode(root_pem).decode(), "options": options})
    path.write_text(json.dumps(cfg))
    services = build_services(Settings.load(path))
    return Client(CirrusApp(services, mounts=default_mounts(services)))


def test_authorization_crt_is_the_x5c_leaf_and_hooks_see_it(authority_dir: Path) -> None:
    leaf = test_x5c.pki()["leaf"]
    with webhook_receiver() as receiver:
        receiver.routes["/"] = answer(True)
        api = _x5c_api(authority_dir, {"x509": {"template": X5C_TEMPLATE},
                                       "webhooks": [hook("gate", receiver.base + "/gate", "AUTHORIZING")]})
        r = test_x5c.sign(api, test_x5c.token())
        assert r.status_code == 201, r.text
        body = receiver.seen[0].json()
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "device-1"
    not_after = leaf.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")  # Go's time.Time String()
    assert _ou(r.get_json()["crt"]) == [str(leaf.serial_number), not_after, "device-1.devices.example.com"]
    assert body["authorizationPrincipal"] == "device-1"
    x5c = body["x5cCertificate"]
    assert base64.b64decode(x5c["raw"]) == leaf.public_bytes(serialization.Encoding.DER)
    assert x5c["publicKeyAlgorithm"] == "ECDSA" and x5c["notAfter"] == leaf.not_valid_after_utc.strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def test_authorization_crt_to_json_uses_go_field_names() -> None:
    leaf = test_x5c.pki()["leaf"]
    out = json.loads(Template("{{ toJson .AuthorizationCrt }}").render({"AuthorizationCrt": go_x509_certificate(leaf)}))
    assert out["Subject"]["CommonName"] == "device-1" and out["Issuer"]["CommonName"] == "Devices Root"
    assert out["SerialNumber"] == leaf.serial_number and out["IsCA"] is False
    assert out["DNSNames"] == ["device-1.devices.example.com"] and out["Version"] == 3
    assert base64.b64decode(out["Raw"]) == leaf.public_bytes(serialization.Encoding.DER)
    printed = Template("{{ .AuthorizationCrt.Subject.CommonName }}|{{ .AuthorizationCrt.NotBefore }}").render(
        {"AuthorizationCrt": go_x509_certificate(leaf)})
    assert printed == "device-1|" + leaf.not_valid_before_utc.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
