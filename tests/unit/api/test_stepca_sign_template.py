"""POST /sign with a provisioner template (`options.x509.template`, issue 15): the template shapes the
certificate, `fail` and broken output are 400s with no certificate, and a broken template stops the
configuration from loading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.errors import ConfigError
from shared.runtime import build_services
from tests.helpers import make_csr, mint_sign_token, pkilint_errors
from tests.unit.api.test_stepca_sign import rows

TEMPLATE = """{
	"subject": {"commonName": {{ toJson .Subject.CommonName }}, "organization": {{ toJson .organization }}},
{{- if hasSuffix ".internal" .Subject.CommonName }}{{ fail "internal names are not issued here" }}{{ end }}
	"sans": {{ toJson (append .SANs (dict "type" "dns" "value" (printf "%s.%s" .Token.sub .suffix))) }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"],
	"policyIdentifiers": ["2.23.140.1.2.1"]
}"""


def _configure(authority_dir: Path, options: dict[str, Any]) -> None:
    path = authority_dir / "config.json"
    config = json.loads(path.read_text())
    config["authority"]["provisioners"][0]["options"] = options
    path.write_text(json.dumps(config))


@pytest.fixture
def templated_api(authority_dir: Path) -> Iterator[Client]:
    (authority_dir / "templates").mkdir()
    (authority_dir / "templates" / "leaf.tpl").write_text(TEMPLATE)
    _configure(authority_dir, {"x509": {"templateFile": "templates/leaf.tpl",
                                        "templateData": {"organization": "Example Ops", "suffix": "svc.example.net"}}})
    services = build_services(Settings.load(authority_dir / "config.json"))
    yield Client(CirrusApp(services, mounts=default_mounts(services)))
    services.close()


def test_the_template_shapes_the_issued_certificate(templated_api: Client, authority_dir: Path) -> None:
    csr, _ = make_csr("app.example.com", ["app.example.com"])
    r = templated_api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "app.example.com")})
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Ops"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com", "app.example.com.svc.example.net"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.CertificatePolicies).value[0].policy_identifier == (
        x509.ObjectIdentifier("2.23.140.1.2.1"))
    # The record lists the names the certificate holds, not only the token's.
    import sqlite3

    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        (stored,) = db.execute("SELECT sans FROM certificates").fetchone()
    finally:
        db.close()
    assert "app.example.com.svc.example.net" in stored
    # The CA's own extensions still follow the template's.
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert pkilint_errors(cert.public_bytes(serialization.Encoding.DER)) == []


def test_fail_in_the_template_is_a_400_and_no_certificate(templated_api: Client, authority_dir: Path) -> None:
    csr, _ = make_csr("db.internal", ["db.internal"])
    r = templated_api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "db.internal")})
    assert r.status_code == 400
    assert r.get_json()["message"] == "internal names are not issued here"
    assert rows(authority_dir)["certificates"] == 0


def test_a_template_rendering_a_wrong_field_is_a_400(authority_dir: Path) -> None:
    text = '{"subject": {{ toJson .Subject }}, "keyUsage": 7, "sans": {{ toJson .SANs }}}'
    _configure(authority_dir, {"x509": {"template": text}})
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr, _ = make_csr("app.example.com", ["app.example.com"])
        r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "app.example.com")})
        assert r.status_code == 400
        assert "'keyUsage' must be" in r.get_json()["message"]
        assert rows(authority_dir)["certificates"] == 0
    finally:
        services.close()


@pytest.mark.parametrize(("options", "message"), [
    ({"x509": {"template": "{\n{{ if .x }}\n"}}, "options.x509: template: admin.x509:3: unexpected EOF"),
    ({"x509": {"templateFile": "missing.tpl"}}, "missing.tpl: No such file"),
    ({"x509": {"template": "{}", "templateData": [1]}}, "templateData must be an object"),
    ({"ssh": {"template": "{{ nosuch }}"}}, "options.ssh: template: admin.ssh:1: function 'nosuch' not defined"),
])
def test_a_broken_template_stops_the_configuration_loading(authority_dir: Path, options: dict[str, Any],
                                                           message: str) -> None:
    _configure(authority_dir, options)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_services(Settings.load(authority_dir / "config.json"))


@pytest.mark.parametrize("level", ["authority", "provisioner"])
def test_names_the_template_adds_meet_the_authority_and_provisioner_policy(authority_dir: Path, level: str) -> None:
    """The token's name is allowed, the SAN the template adds is not: 403 and no certificate, whether
    the policy is the authority's or the provisioner's (the policy check is skipped only without any)."""
    _configure(authority_dir, {"x509": {"template": TEMPLATE,
                                        "templateData": {"organization": "Example Ops", "suffix": "svc.example.net"}}})
    path = authority_dir / "config.json"
    config = json.loads(path.read_text())
    policy = {"x509": {"allow": {"dns": ["app.example.com"]}}}
    if level == "authority":
        config["authority"]["policy"] = policy
    else:
        config["authority"]["provisioners"][0]["policy"] = policy
    path.write_text(json.dumps(config))
    services = build_services(Settings.load(path))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr, _ = make_csr("app.example.com", ["app.example.com"])
        r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "app.example.com")})
        assert r.status_code == 403, r.text
        assert "app.example.com.svc.example.net" in r.get_json()["message"]
    finally:
        services.close()
    assert rows(authority_dir)["certificates"] == 0
