"""SSH certificate templates (`options.ssh`, issue 15 items 2-3): step's default templates give
today's certificates field for field, a provisioner's own template changes what `ssh-keygen -L`
shows, and a broken or hostile template is a 4xx with its line and no certificate (or a refusal
when the configuration loads)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.claims import resolve_claims
from shared.config import Settings
from shared.errors import BadRequest, ConfigError, Forbidden
from shared.model import ProvisionerRef
from shared.provisioners.base import ReplayClaim
from shared.provisioners.ssh_sign import SSHIdentity, iid_ssh_authorization, oidc_ssh_authorization
from shared.runtime import Services, build_services
from shared.ssh.certificate import DEFAULT_USER_EXTENSIONS, HOST_CERT, USER_CERT, SSHCertificate, parse_certificate
from shared.ssh.options import SSHOptions, SSHSignAuthorization, jwk_ssh_authorization
from shared.ssh.templated import apply_ssh_template, certificate_request, ssh_template_data
from shared.ssh.wire import SSHPublicKey, b64decode_strict, parse_public_key
from shared.templates import Template
from shared.templates.provisioner import ProvisionerTemplate
from tests.sshhelpers import cert_line, keygen, ssh_token
from tests.templates import corpus
from tests.unit.ssh.test_ssh_api import refused, ssh_rows

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
Configure = Callable[[dict[str, Any]], Client]


@pytest.fixture
def configure(authority_dir: Path) -> Iterator[Configure]:
    """An app whose JWK provisioner has these `options`."""
    made: list[Services] = []

    def make(options: dict[str, Any]) -> Client:
        path = authority_dir / "config.json"
        cfg = json.loads(path.read_text())
        cfg["authority"]["provisioners"][0]["options"] = options
        path.write_text(json.dumps(cfg))
        s = build_services(Settings.load(path))
        made.append(s)
        return Client(CirrusApp(s, mounts=default_mounts(s)))

    yield make
    for s in made:
        s.close()


@pytest.fixture
def pub(tmp_path: Path) -> str:
    return keygen(tmp_path, "id_ed25519", "-t", "ed25519")[1]


def _sign(api: Client, authority_dir: Path, pub: str, ssh: dict[str, Any], subject: str = "alice@example.com",
          **body: Any) -> Any:
    return api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ssh_token(authority_dir, subject, ssh), **body})


def _issued(r: Any) -> SSHCertificate:
    assert r.status_code == 201, r.text
    return parse_certificate(base64.b64decode(r.get_json()["crt"]))


def _fields(cert: SSHCertificate) -> tuple[Any, ...]:
    return (cert.cert_type, cert.key_id, cert.principals, dict(cert.extensions), dict(cert.critical_options),
            cert.valid_before - cert.valid_after, cert.signature_key)


def _keygen_l(tmp_path: Path, crt: str) -> str:
    path = tmp_path / "shown-cert.pub"
    path.write_text(cert_line(crt))
    return subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True).stdout


# ---------------------------------------------- step's defaults = today's certificates
@pytest.mark.parametrize("ssh", [
    {"certType": "user", "keyID": "alice@example.com", "principals": ["alice", "ops"]},
    {"certType": "user"},
    {"certType": "host", "principals": ["web1.internal", "10.0.0.7"]},
])
def test_step_default_template_reproduces_todays_certificate(api: Client, configure: Configure,
                                                              authority_dir: Path, pub: str, ssh: dict[str, Any]) -> None:
    """The same request signed by the built-in rules and by step's DefaultTemplate as the
    provisioner's template: every field the same (serial, nonce and signature aside)."""
    today = _issued(_sign(api, authority_dir, pub, ssh, certType=ssh["certType"]))
    templated_api = configure({"ssh": {"template": corpus.SSH_DEFAULT}})
    templated = _issued(_sign(templated_api, authority_dir, pub, ssh, certType=ssh["certType"]))
    assert _fields(templated) == _fields(today)
    if ssh["certType"] == "user":
        assert dict(today.extensions) == dict(DEFAULT_USER_EXTENSIONS)


def _key(pub: str) -> SSHPublicKey:
    return parse_public_key(b64decode_strict(pub, "publicKey"))


def _identity(claims: dict[str, Any] | None = None) -> SSHIdentity:
    ref = ProvisionerRef(id="p-1", name="cloud", type="GCP")
    return SSHIdentity(ref, resolve_claims({"enableSSHCA": True, **(claims or {})}, None),
                       ReplayClaim("ns", "k", NOW))


def _rendered(text: str, auth: SSHSignAuthorization, request: SSHOptions, key: SSHPublicKey) -> SSHSignAuthorization:
    granted, fields = apply_ssh_template(ProvisionerTemplate(Template(text, "default")), auth, request=request,
                                         key=key, token={"sub": "x"})
    want_ext = dict(DEFAULT_USER_EXTENSIONS) if auth.cert_type == USER_CERT else {}
    assert (fields.extensions, fields.critical_options) == (want_ext, {})
    return granted


@pytest.mark.parametrize("disable_custom_sans", [True, False])
@pytest.mark.parametrize("asked", [(), ("web-1.c.cirrus-test.internal",), ("db.example.net",)])
def test_step_iid_template_reproduces_the_instance_identity_rules(pub: str, disable_custom_sans: bool,
                                                                   asked: tuple[str, ...]) -> None:
    """DefaultIIDTemplate over step-ca's data (`.Principals` = the instance's names) gives what the
    hand-written rules grant, with and without requested principals."""
    names = ("web-1.c.cirrus-test.internal", "web-1.us-central1-a.c.cirrus-test.internal")
    request = SSHOptions(cert_type="host", principals=asked)
    try:
        auth = iid_ssh_authorization(_identity(), key_id="web-1", principals=names,
                                     disable_custom_sans=disable_custom_sans, request=request)
    except (BadRequest, Forbidden):
        return  # refused before any template runs
    assert _rendered(corpus.SSH_IID, auth, request, _key(pub)) == auth


@pytest.mark.parametrize(("admin", "request_opts", "template"), [
    (False, SSHOptions(), corpus.SSH_DEFAULT),
    (False, SSHOptions(cert_type="user", principals=("janedoe",)), corpus.SSH_DEFAULT),
    (True, SSHOptions(cert_type="host", key_id="bastion", principals=("bastion.internal",)), corpus.SSH_ADMIN),
    (True, SSHOptions(cert_type="user", key_id="root-ops", principals=("root",)), corpus.SSH_ADMIN),
])
def test_step_oidc_templates_reproduce_the_oidc_rules(pub: str, admin: bool, request_opts: SSHOptions,
                                                      template: str) -> None:
    auth = oidc_ssh_authorization(_identity(), email="Jane.Doe@example.com", admin=admin, request=request_opts)
    assert _rendered(template, auth, request_opts, _key(pub)) == auth


def test_jwk_template_data_is_step_cas(pub: str) -> None:
    """The data itself: top-level variables, the token, the request as sshutil.CertificateRequest,
    provisioner templateData overriding, request templateData as .Insecure.User."""
    request = SSHOptions(cert_type="user", key_id="alice", principals=("alice",))
    claims = {"sub": "alice", "step": {"ssh": {"certType": "user", "principals": ["alice", "ops"]}}}
    auth = jwk_ssh_authorization(provisioner_id="p", provisioner_name="admin", claims=_identity().claims,
                                 token_claims=claims, replay=ReplayClaim("ns", "k", NOW), request=request, now=NOW)
    data = ssh_template_data(cert_type=auth.cert_type, key_id=auth.key_id, principals=auth.principals, token=claims,
                             request=certificate_request(cert_type="user", key_id="alice", principals=["alice"],
                                                         key=_key(pub)),
                             user={"role": "dba"}, extra={"team": "ops"})
    text = ('{{ .Type }}|{{ .KeyID }}|{{ join "," .Principals }}|{{ len .Extensions }}|{{ toJson .CriticalOptions }}'
            '|{{ .Token.sub }}|{{ .Insecure.CR.KeyID }}|{{ toJson .Insecure.CR.Principals }}|{{ .Insecure.User.role }}'
            '|{{ .team }}|{{ typeOf .Insecure.CR.Key }}')
    assert Template(text).render(data) == "user|alice|alice,ops|5|null|alice|alice|[\"alice\"]|dba|ops|ssh.ed25519PublicKey"
    host = ssh_template_data(cert_type=HOST_CERT, key_id="h", principals=["h"], token=None,
                             request=certificate_request(cert_type="", key_id="", principals=[], key=None),
                             extra={"Type": "user"})
    # templateData overrides the top-level variables (json.Unmarshal into the map); hosts get no extensions.
    assert Template("{{ .Type }} {{ toJson .Extensions }} {{ .Insecure.User }} {{ if .Insecure.CR.Principals }}x{{ end }}"
                    ).render(host) == "user null <no value> "


# --------------------------------------------------------- a provisioner's own template
CUSTOM = """{
	"type": {{ toJson .Type }},
	"keyId": {{ toJson .KeyID }},
{{- if not (hasSuffix "@example.com" .Token.sub) }}{{ fail "only example.com accounts get SSH certificates" }}{{ end }}
	"principals": {{ toJson (append .Principals (printf "%s-%s" (splitList "@" .KeyID | first) .team)) }},
	"extensions": {
		"permit-pty": "",
		"permit-port-forwarding": ""{{ if .Insecure.User.agent }},
		"permit-agent-forwarding": ""{{ end }}
	},
	"criticalOptions": {"source-address": {{ toJson .network }}, "force-command": "/usr/bin/audit-shell"}
}"""


def test_a_custom_template_changes_what_ssh_keygen_shows(configure: Configure, authority_dir: Path, pub: str,
                                                         tmp_path: Path) -> None:
    (authority_dir / "templates").mkdir()
    (authority_dir / "templates" / "user.tpl").write_text(CUSTOM)
    api = configure({"ssh": {"templateFile": "templates/user.tpl",
                             "templateData": {"team": "dba", "network": "10.0.0.0/8"}}})
    ssh = {"certType": "user", "keyID": "alice@example.com", "principals": ["alice"]}
    r = _sign(api, authority_dir, pub, ssh, templateData={"agent": True})
    assert r.status_code == 201, r.text
    shown = _keygen_l(tmp_path, r.get_json()["crt"])
    assert 'Key ID: "alice@example.com"' in shown
    assert "Principals: \n                alice\n                alice-dba\n" in shown
    assert "force-command /usr/bin/audit-shell" in shown and "source-address 10.0.0.0/8" in shown
    extensions = shown.split("Extensions:")[1]
    assert "permit-pty" in extensions and "permit-port-forwarding" in extensions
    assert "permit-agent-forwarding" in extensions
    assert "permit-X11-forwarding" not in extensions and "permit-user-rc" not in extensions
    # Without the request's templateData, `.Insecure.User.agent` is unset and agent forwarding is not granted.
    cert = _issued(_sign(api, authority_dir, pub, ssh))
    assert set(cert.extensions) == {"permit-pty", "permit-port-forwarding"}
    # The record holds the templated names (the endpoint groups on them).
    assert ssh_rows(authority_dir) == 2


def test_a_template_choosing_a_host_certificate_gets_the_host_key_and_duration(configure: Configure,
                                                                               authority_dir: Path, pub: str) -> None:
    api = configure({"ssh": {"template": '{"type": "host", "keyId": {{ toJson .KeyID }}, '
                                         '"principals": [{{ toJson (printf "%s.hosts.example.net" .Token.sub) }}]}'}})
    cert = _issued(_sign(api, authority_dir, pub, {"certType": "user"}, subject="web7"))
    roots = api.get("/ssh/roots").get_json()
    assert cert.cert_type == HOST_CERT and cert.principals == ("web7.hosts.example.net",) and not cert.extensions
    assert cert.signature_key == base64.b64decode(roots["hostKey"][0])
    assert cert.valid_before - cert.valid_after == 720 * 3600 + 60


def test_a_base64_inline_template_is_read_as_step_ca_reads_it(configure: Configure, authority_dir: Path,
                                                              pub: str) -> None:
    text = '{"type": "user", "keyId": {{ toJson .KeyID }}, "principals": ["b64-" ]}'.replace('"b64-" ', '"b64"')
    api = configure({"ssh": {"template": base64.b64encode(text.encode()).decode()}})
    assert _issued(_sign(api, authority_dir, pub, {"certType": "user"})).principals == ("b64",)


# ---------------------------------------------------------------------------- bad templates
@pytest.mark.parametrize(("template", "status", "message"), [
    (CUSTOM, 400, "only example.com accounts get SSH certificates"),
    ('{"type": "user",\n"keyId": "k",\n"principals": {{ .Principals }}}', 400,
     "certificate template: template: admin.ssh: rendered template is not valid JSON"),
    ('{"type": "user", "keyId": "k", "principals": "alice"}', 400, "'principals' must be a list"),
    ('{"type": "user", "keyId": "k", "principals": ["a", 7]}', 400, "field 'principals' must be a string"),
    ('{"type": "router", "keyId": "k", "principals": ["a"]}', 400, "field 'type' must be \"user\" or \"host\""),
    ('{"keyId": "k", "principals": ["a"]}', 400, "field 'type' must be"),
    ('{"type": "user", "keyId": "k", "principals": ["a"], "extensions": {"permit-pty": true}}', 400,
     "field 'extensions.permit-pty' must be a string"),
    ('{"type": "user", "keyId": "k", "principals": ["a"], "serial": 7}', 400, "the CA assigns SSH serial numbers"),
    ('{"type": "user", "keyId": "", "principals": ["a"]}', 403, "ssh certificate key id cannot be empty"),
    ('{"type": "user", "keyId": "k", "principals": []}', 403, "valid principals cannot be empty"),
    ('{"type": "user", "keyId": "k",\n{{ range until 100000000 }}{{ end }}}', 400, "admin.ssh:2:"),
    ('{"type": "user", "keyId": "k", "principals": [{{ index .Principals 5 }}]}', 400, "admin.ssh:1:"),
])
def test_a_bad_template_is_a_4xx_with_no_certificate(configure: Configure, authority_dir: Path, pub: str,
                                                     template: str, status: int, message: str) -> None:
    api = configure({"ssh": {"template": template}})
    r = _sign(api, authority_dir, pub, {"certType": "user"}, subject="mallory@evil.test")
    refused(r, status)
    assert message in r.get_json()["message"]
    assert ssh_rows(authority_dir) == 0


@pytest.mark.parametrize(("options", "message"), [
    ({"ssh": {"template": "{\n{{ range .x }}\n"}}, "options.ssh: template: admin.ssh:3: unexpected EOF"),
    ({"ssh": {"template": "not base64!"}}, "options.ssh.template is neither JSON text"),
    ({"ssh": {"templateFile": "absent.tpl"}}, "options.ssh.templateFile absent.tpl: No such file"),
    ({"ssh": {"template": "{}", "templateData": "x"}}, "options.ssh.templateData must be an object"),
    ({"ssh": "{}"}, "options.ssh must be an object"),
])
def test_a_broken_ssh_template_stops_the_configuration(authority_dir: Path, configure: Configure,
                                                       options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        configure(options)
