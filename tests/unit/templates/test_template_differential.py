"""Differential suite: Go's text/template + sprig (Debian's Go toolchain) and Cirrus's engine render
the same templates over the same data identically, or both refuse them (issue 15)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.templates import TemplateError, render
from shared.templates.provisioner import with_webhooks
from tests.templates import corpus, goref

pytestmark = pytest.mark.skipif(goref.available() is not None, reason=str(goref.available()))


def _ours(text: str, data: Any) -> tuple[bool, str]:
    try:
        return True, render(text, data)
    except TemplateError as exc:
        return False, str(exc)


def _compare(cases: list[tuple[str, Any]]) -> tuple[list[str], int]:
    results = goref.render_all(cases)
    problems: list[str] = []
    successes = 0
    for (text, data), theirs in zip(cases, results, strict=True):
        ok, ours = _ours(text, data)
        if ok != theirs["ok"] or (ok and ours != theirs["output"]):
            problems.append(f"template {text!r}\n  go:     {theirs['ok']} {theirs['output'] or theirs['error']!r}\n"
                            f"  cirrus: {ok} {ours!r}")
        successes += bool(ok and theirs["ok"])
    return problems, successes


def test_step_default_and_documented_templates_render_as_go_renders_them() -> None:
    cases = corpus.fixed_cases()
    problems, successes = _compare(cases)
    assert not problems, "\n".join(problems[:20])
    # A documented example calls `fail` on purpose for some data; everything else renders.
    assert successes >= len(cases) - 4


def test_generated_corpus_over_every_construct_and_function_matches_go() -> None:
    cases = corpus.generated_cases()
    assert len(cases) >= 2000
    problems, successes = _compare(cases)
    assert not problems, f"{len(problems)} of {len(cases)} differ:\n" + "\n".join(problems[:20])
    # Both outcomes are exercised: most render, many are refused by both.
    assert successes > len(cases) // 3
    assert len(cases) - successes > 100


def _go_constants(path: Path) -> dict[str, str]:
    text = path.read_text()
    return dict(re.findall(r"const (\w+) = `(.*?)`", text, re.S))


@pytest.mark.skipif(not corpus.STEP_SOURCES.is_dir(), reason="go.step.sm/crypto sources are not installed")
def test_corpus_holds_step_ca_default_templates_verbatim() -> None:
    """The defaults in the corpus are step's own, as Debian ships them (not paraphrases)."""
    x509 = _go_constants(corpus.STEP_SOURCES / "x509util/templates.go")
    ssh = _go_constants(corpus.STEP_SOURCES / "sshutil/templates.go")
    assert x509["DefaultLeafTemplate"] == corpus.DEFAULT_LEAF
    assert x509["DefaultIIDLeafTemplate"] == corpus.DEFAULT_IID_LEAF
    assert x509["DefaultAdminLeafTemplate"] == corpus.DEFAULT_ADMIN_LEAF
    assert x509["DefaultIntermediateTemplate"] == corpus.DEFAULT_INTERMEDIATE
    assert x509["DefaultRootTemplate"] == corpus.DEFAULT_ROOT
    assert x509["CertificateRequestTemplate"] == corpus.CERTIFICATE_REQUEST
    if "DefaultAttestedLeafTemplate" in x509:
        assert x509["DefaultAttestedLeafTemplate"] == corpus.DEFAULT_ATTESTED_LEAF
    assert ssh["DefaultTemplate"] == corpus.SSH_DEFAULT
    assert ssh["DefaultAdminTemplate"] == corpus.SSH_ADMIN
    assert ssh["DefaultIIDTemplate"] == corpus.SSH_IID
    assert ssh["CertificateRequestTemplate"] == corpus.SSH_CERTIFICATE_REQUEST


def _general_names(sans: list[str]) -> list[x509.GeneralName]:
    """x509util.CreateSANs' split: DNS, then IPs, e-mails, URIs (the default profile's order too)."""
    dns, ips, emails, uris = [], [], [], []
    for s in sans:
        try:
            ips.append(x509.IPAddress(ipaddress.ip_address(s)))
            continue
        except ValueError:
            pass
        if "@" in s:
            emails.append(x509.RFC822Name(s))
        elif "://" in s:
            uris.append(x509.UniformResourceIdentifier(s))
        else:
            dns.append(x509.DNSName(s))
    return [*dns, *ips, *emails, *uris]


STRUCT_TEMPLATES = [
    "{{ .Subject.CommonName }}|{{ toJson .Subject }}|{{ range .SANs }}{{ .Type }}={{ .Value }};{{ end }}",
    "{{ toJson .SANs }}|{{ typeOf .Insecure.CR.PublicKey }}|{{ typeIs \"*ecdsa.PublicKey\" .Insecure.CR.PublicKey }}",
    "{{ toJson .Insecure.CR.Subject }}|{{ .Insecure.CR.Subject.CommonName }}|{{ toJson .Insecure.CR.DNSNames }}",
    "{{ toJson .Insecure.CR.EmailAddresses }}{{ toJson .Insecure.CR.IPAddresses }}{{ toJson .Insecure.CR.URIs }}",
    "{{ with .Insecure.CR }}{{ .Subject.CommonName }}{{ end }}{{ if .Subject }}has{{ end }}{{ len .SANs }}",
    "{{ .Subject.Nope }}",
    "{{ toJson .Token }}|{{ .Token.sub }}|{{ toJson .Insecure.User }}|{{ .organization }}",
]


def test_step_typed_template_data_renders_as_step_renders_it() -> None:
    """Against x509util.TemplateData itself: Go struct fields in templates, step's JSON in toJson."""
    from shared.x509.templated import template_data
    from tests.helpers import make_csr

    ec_csr, _ = make_csr("app.example.com", ["app.example.com", "10.0.0.1", "ops@example.com"])
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_csr, _ = make_csr("rsa.example.com", ["rsa.example.com"], key=rsa_key)
    no_cn_csr, _ = make_csr(None, ["svc.example.com", "spiffe://example.com/svc"])
    scenarios = [
        ("app.example.com", ["app.example.com", "10.0.0.1", "ops@example.com"], ec_csr, False),
        ("rsa.example.com", ["rsa.example.com"], rsa_csr, True),
        ("", ["svc.example.com", "spiffe://example.com/svc"], no_cn_csr, False),
    ]
    templates = [*corpus.X509_DEFAULTS.values(), *corpus.DOCUMENTED[:4], *STRUCT_TEMPLATES]
    cases_go: list[tuple[str, Any]] = []
    cases_py: list[tuple[str, Any]] = []
    token = {"sub": "app.example.com", "email": "jane@example.com", "groups": ["ops"]}
    extra = {"organization": "Example", "maxPathLen": 0, "permittedDNSDomains": [".example.com"]}
    for text in templates:
        for cn, sans, csr_pem, is_rsa in scenarios:
            cases_go.append((text, {"commonName": cn, "sans": sans, "csr": csr_pem, "token": token,
                                    "user": {"ou": "eng"}, "extra": extra}))
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            cases_py.append((text, template_data(cn, _general_names(sans), rsa_key=is_rsa, csr=csr, token=token,
                                                 user={"ou": "eng"}, extra=extra)))
    results = goref.render_all(cases_go, step=True)
    problems = []
    for (text, data), theirs in zip(cases_py, results, strict=True):
        ok, ours = _ours(text, data)
        if ok != theirs["ok"] or (ok and ours != theirs["output"]):
            problems.append(f"template {text!r}\n  go:     {theirs['ok']} {theirs['output'] or theirs['error']!r}\n"
                            f"  cirrus: {ok} {ours!r}")
    assert not problems, "\n".join(problems[:10])
    assert sum(r["ok"] for r in results) >= len(results) - 3 * 2  # `.Subject.Nope` is refused by both


PRECEDENCE_TEMPLATES = [
    "{{ toJson .Subject }}", "{{ .Subject.CommonName }}", "{{ toJson .SANs }}", "{{ toJson .Token }}",
    "{{ toJson .Insecure.User }}", "{{ toJson .Insecure.CR.DNSNames }}", "{{ .Insecure.Nope }}",
    "{{ toJson .Insecure }}", "{{ .team }}", "{{ toJson .Webhooks }}",
]
HOOK_ANSWERS = {"people": {"username": "alice"}, "static": {"shadowed": False}}


@pytest.mark.parametrize("user", [{"ou": "eng"}, None])
def test_the_provisioners_template_data_merges_as_step_cas_provisioner_merges_it(user: Any) -> None:
    """Against step-ca's own `provisioner.TemplateOptions`: the provisioner's templateData is merged over
    `.Subject`, `.SANs` and `.Token` (it wins), never over `.Insecure` (the request's, set later), and
    `.Insecure.User` exists only when the request sent templateData."""
    from shared.x509.templated import template_data
    from tests.helpers import make_csr

    csr_pem, _ = make_csr("app.example.com", ["app.example.com"])
    extra = {"Subject": {"CommonName": "from-templateData", "organization": ["Example"]},
             "SANs": [{"type": "dns", "value": "forced.example.com"}], "Token": {"sub": "forced"},
             "Insecure": {"User": {"ou": "forged"}, "CR": {"DNSNames": ["forged.example.com"]}}, "team": "dba",
             "Webhooks": {"static": {"shadowed": True}, "fixed": {"n": 1}}}
    token = {"sub": "app.example.com"}
    go_case = {"commonName": "app.example.com", "sans": ["app.example.com"], "csr": csr_pem, "token": token,
               "user": user, "extra": extra, "webhooks": HOOK_ANSWERS}
    results = goref.render_all([(t, go_case) for t in PRECEDENCE_TEMPLATES], step=True)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    for text, theirs in zip(PRECEDENCE_TEMPLATES, results, strict=True):
        data = template_data("app.example.com", _general_names(["app.example.com"]), rsa_key=False, csr=csr,
                             token=token, user=user, extra=extra)
        data["Webhooks"] = with_webhooks(data.get("Webhooks"), HOOK_ANSWERS)  # as shared.webhooks sets it
        assert theirs["ok"], theirs
        assert _ours(text, data) == (True, theirs["output"]), text
    # What step-ca does, spelled out: the provisioner's values win, the request's `.Insecure` is kept.
    assert [r["output"] for r in results[1:4]] == [
        "from-templateData", '[{"type":"dns","value":"forced.example.com"}]', '{"sub":"forced"}']
    assert results[5]["output"] == '["app.example.com"]'
    assert results[-1]["output"] == '{"fixed":{"n":1},"people":{"username":"alice"},"static":{"shadowed":false}}'


SSH_PRECEDENCE_TEMPLATES = [
    "{{ .Type }}", "{{ .KeyID }}", "{{ toJson .Principals }}", "{{ toJson .Extensions }}", "{{ toJson .Token }}",
    "{{ toJson .Insecure.User }}", "{{ .Insecure.CR.KeyID }}", "{{ toJson .Insecure.CR.Principals }}",
    "{{ .team }}", "{{ toJson .Webhooks }}",
]


@pytest.mark.parametrize("user", [{"agent": True}, None])
def test_ssh_template_data_merges_as_step_cas_provisioner_merges_it(user: Any) -> None:
    """Against step-ca's own `provisioner.TemplateSSHOptions`: the provisioner's templateData wins over
    `.KeyID`, `.Principals`, `.Extensions` and `.Token`, never over `.Insecure`; ENRICHING webhooks
    add to a templateData `Webhooks` object."""
    from shared.ssh.certificate import USER_CERT
    from shared.ssh.templated import _merged, certificate_request, ssh_template_data

    extra = {"KeyID": "forced", "Principals": ["root"], "Extensions": {"permit-pty": ""},
             "Token": {"sub": "forced"}, "Insecure": {"User": {"agent": "forged"}, "CR": {"KeyID": "forged"}},
             "team": "dba", "Webhooks": {"static": {"shadowed": True}, "fixed": {"n": 1}}}
    token = {"sub": "alice@example.com"}
    go_case = {"type": "user", "keyId": "alice@example.com", "principals": ["alice"], "token": token,
               "user": user, "extra": extra, "webhooks": HOOK_ANSWERS}
    results = goref.render_all([(t, go_case) for t in SSH_PRECEDENCE_TEMPLATES], ssh=True)
    for text, theirs in zip(SSH_PRECEDENCE_TEMPLATES, results, strict=True):
        data = ssh_template_data(
            cert_type=USER_CERT, key_id="alice@example.com", principals=["alice"], token=token,
            request=certificate_request(cert_type="user", key_id="alice@example.com", principals=["alice"], key=None),
            user=user, extra=_merged(extra, {"Webhooks": HOOK_ANSWERS}))
        assert theirs["ok"], theirs
        assert _ours(text, data) == (True, theirs["output"]), text
    assert [r["output"] for r in results[1:3]] == ["forced", '["root"]']
    assert results[6]["output"] == "alice@example.com"
