"""A template given only the data keys it reads (shared/templates/reads.py) renders exactly what it
renders over the whole data: the walk's bounds, and the same text or error over the whole corpus."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from shared.templates import Template, TemplateError
from shared.x509.names import SANs
from shared.x509.template_data import go_sans, template_data
from tests.templates import corpus

CUSTOM = """{
	"subject": {"commonName": {{ toJson .Subject.CommonName }}, "organization": {{ toJson .organization }}},
	"sans": {{ toJson (append .SANs (dict "type" "dns" "value" (printf "%s.%s" .Token.sub .suffix))) }},
	"keyUsage": ["digitalSignature"]
}"""


def _outcome(template: Template, data: Any) -> tuple[bool, str]:
    try:
        return True, template.render(data)
    except TemplateError as exc:
        return False, str(exc)


def test_the_walk_bounds_field_chains_and_gives_up_on_anything_else() -> None:
    assert Template(corpus.DEFAULT_LEAF).data_reads == {"Subject": None, "SANs": None,
                                                        "Insecure": frozenset({"CR"})}
    assert Template(CUSTOM).data_reads == {"Subject": frozenset({"CommonName"}), "organization": None,
                                           "SANs": None, "Token": frozenset({"sub"}), "suffix": None}
    # A key read whole anywhere is read whole.
    assert Template("{{ .Token.sub }}{{ toJson .Token }}").data_reads == {"Token": None}
    for text in ("{{ toJson . }}", "{{ $.Token.sub }}", "{{ with .Token }}{{ .sub }}{{ end }}",
                 "{{ range .SANs }}{{ .Value }}{{ end }}", '{{ define "x" }}{{ . }}{{ end }}{{ template "x" . }}',
                 "{{ $x := .Token }}{{ $x.sub }}", "{{ (.Token).sub }}"):
        assert Template(text).data_reads is None, text


def test_selected_data_renders_what_the_whole_data_renders_over_the_corpus() -> None:
    bounded = 0
    for text, data in corpus.fixed_cases() + corpus.generated_cases():
        try:
            template = Template(text)
        except TemplateError:
            continue
        if template.data_reads is None or type(data) is not dict:
            continue
        bounded += 1
        selected = _outcome(template, data)
        template.data_reads = None  # the whole data, as before
        assert selected == _outcome(template, data), (text, data)
    assert bounded > 200, bounded  # not vacuous


def test_template_data_built_for_the_reads_renders_the_same() -> None:
    names: list[x509.GeneralName] = [x509.DNSName("app.example.com"), x509.DNSName("api.example.com")]
    split = SANs(dns=("app.example.com", "api.example.com"), all=("app.example.com", "api.example.com"))
    token = {"sub": "app.example.com", "iss": "admin", "nbf": 1796651787, "sans": ["app.example.com"]}
    extra = {"organization": "Example Ops", "suffix": "svc.example.net", "unused": {"deep": [1, 2]}}
    for text in (CUSTOM, corpus.DEFAULT_LEAF, corpus.DEFAULT_IID_LEAF, corpus.DEFAULT_ADMIN_LEAF):
        template = Template(text)
        assert template.data_reads is not None
        whole = template_data("app.example.com", names, rsa_key=False, token=token, extra=extra)
        built = template_data("app.example.com", split, rsa_key=False, token=token, extra=extra,
                              reads=template.data_reads)
        assert set(built) <= set(whole)
        assert template.render(built) == template.render(whole)
    # Only what the custom template reads is built: one claim of the token, no .Insecure.
    built = template_data("app.example.com", split, rsa_key=False, token=token, extra=extra,
                          reads=Template(CUSTOM).data_reads)
    assert set(built) == {"Subject", "SANs", "Token", "organization", "suffix"}
    assert built["Token"] == {"sub": "app.example.com"}


def test_sans_from_the_split_token_names_are_the_general_names_ones() -> None:
    import ipaddress

    split = SANs(dns=("a.example",), ips=(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")),
                 emails=("me@example.com",), uris=("spiffe://example/x",))
    from_split = template_data("a.example", split, rsa_key=False)["SANs"]
    from_names = go_sans(split.general_names())
    assert [(s.go_type, s.values) for s in from_split] == [(s.go_type, s.values) for s in from_names]
