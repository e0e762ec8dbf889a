"""Rendered X.509 templates onto certificate fields (reference 4.4): step's DefaultLeafTemplate gives
today's default leaf byte for byte; every other field lands where a template puts it; hostile or
wrong templates are refused with a clear TemplateError."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.templates import Template, TemplateError
from shared.templates.fields import decode_rendered
from shared.x509.names import common_name_of, sans_of
from shared.x509.profile import ca_leaf_extensions, default_leaf_extensions, provisioner_extension, sign_certificate
from shared.x509.templated import template_data, templated_leaf
from tests.templates import corpus

NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.UTC)


def _issuer():  # type: ignore[no-untyped-def]
    from tests.unit.core.test_leaf_profile import _issuer as make

    return make()


def _render(text: str, data: dict[str, object]) -> dict[str, object]:
    return decode_rendered(Template(text).render(data), ssh=False)


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
@pytest.mark.parametrize("common_name", ["svc.example.com", ""])
def test_default_leaf_template_reproduces_the_default_profile_byte_for_byte(key_type: str, common_name: str) -> None:
    issuer = _issuer()
    public_key = (ec.generate_private_key(ec.SECP256R1()).public_key() if key_type == "ec"
                  else rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
    names: list[x509.GeneralName] = [x509.DNSName("svc.example.com"), x509.DNSName("api.example.com"),
                                     x509.IPAddress(ipaddress.ip_address("10.0.0.7")),
                                     x509.RFC822Name("ops@example.com"),
                                     x509.UniformResourceIdentifier("spiffe://example.com/svc")]
    prov = provisioner_extension("JWK", "admin", "kid-1")
    urls = {"crl_url": "http://ca.test/crl/1.crl", "ocsp_url": "http://ca.test/ocsp",
            "ca_issuers_url": "http://ca.test/int.crt"}
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    today = default_leaf_extensions(public_key=public_key, san=x509.SubjectAlternativeName(names),
                                    san_critical=not common_name, provisioner=prov, **urls)

    data = template_data(common_name, names, rsa_key=key_type == "rsa")
    leaf = templated_leaf(_render(corpus.DEFAULT_LEAF, data))
    assert leaf.subject == subject and leaf.common_name == common_name
    templated = [*leaf.extensions, *ca_leaf_extensions(provisioner=prov, **urls)]

    def sign(subj: x509.Name, exts: list[x509.Extension[x509.ExtensionType]]) -> x509.Certificate:
        return sign_certificate(issuer, subject=subj, public_key=public_key, serial=0x1234567890ABCDEF,
                                not_before=NOW, not_after=NOW + dt.timedelta(hours=24), extensions=exts)

    assert sign(leaf.subject, templated).tbs_certificate_bytes == sign(subject, today).tbs_certificate_bytes


def test_every_field_a_template_may_set() -> None:
    der = base64.b64encode(b"\x0c\x05hello").decode()
    text = """{
  "subject": {"commonName": {{ toJson .Subject.commonName }}, "organization": ["Example", "Ops"], "country": "NZ",
              "extraNames": [{"type": "0.9.2342.19200300.100.1.1", "value": {{ toJson .Inventory.uid }}}]},
  "sans": [{"type": "dns", "value": {{ toJson .Inventory.workload }}}, {"type": "auto", "value": "10.1.2.3"},
           {"type": "auto", "value": "x@example.com"}, {"type": "uri", "value": "spiffe://example.com/w"}],
  "keyUsage": ["DigitalSignature", "keyAgreement"],
  "extKeyUsage": ["clientAuth", "codeSigning"], "unknownExtKeyUsage": ["1.3.6.1.4.1.99999.1"],
  "basicConstraints": {"isCA": false, "maxPathLen": -1},
  "policyIdentifiers": ["2.23.140.1.2.1"],
  "nameConstraints": {"critical": true, "permittedDNSDomains": [".example.com"], "excludedIPRanges": ["10.0.0.0/8"]},
  "extensions": [{"id": "1.3.6.1.4.1.99999.2", "critical": false, "value": "%s"}]
}""" % der
    leaf = templated_leaf(_render(text, {"Subject": {"commonName": "w1"},
                                         "Inventory": {"workload": "payments.example.com", "uid": "svc-pay"}}))
    attrs = {(a.oid.dotted_string, a.value) for a in leaf.subject}
    assert (NameOID.COUNTRY_NAME.dotted_string, "NZ") in attrs and ("0.9.2342.19200300.100.1.1", "svc-pay") in attrs
    assert [a.oid for a in leaf.subject][:2] == [NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME]
    # Read back through a signed certificate: the usual extensions come pre-encoded, as in the profile.
    cert = sign_certificate(_issuer(), subject=leaf.subject, public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                            serial=99, not_before=NOW, not_after=NOW + dt.timedelta(hours=1),
                            extensions=list(leaf.extensions))
    by_oid = {e.oid: e for e in cert.extensions}
    san = by_oid[x509.SubjectAlternativeName.oid].value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["payments.example.com"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert san.get_values_for_type(x509.RFC822Name) == ["x@example.com"]
    ku = by_oid[x509.KeyUsage.oid]
    assert ku.critical and ku.value.digital_signature and ku.value.key_agreement  # type: ignore[attr-defined]
    eku = by_oid[x509.ExtendedKeyUsage.oid].value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.CODE_SIGNING,  # type: ignore[call-overload]
                         x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")]
    assert by_oid[x509.BasicConstraints.oid].value == x509.BasicConstraints(ca=False, path_length=None)
    nc = by_oid[x509.NameConstraints.oid]
    assert nc.critical and nc.value.permitted_subtrees == [x509.DNSName(".example.com")]  # type: ignore[attr-defined]
    # What the record keeps is what the certificate holds, without reading it back.
    assert (leaf.common_name, leaf.san_strings) == (common_name_of(cert.subject), tuple(sans_of(cert)))
    raw = by_oid[x509.ObjectIdentifier("1.3.6.1.4.1.99999.2")]
    assert raw.value.value == b"\x0c\x05hello" and not raw.critical  # type: ignore[attr-defined]
    assert x509.CertificatePolicies.oid in by_oid


@pytest.mark.parametrize(("doc", "message"), [
    ({"basicConstraints": {"isCA": True, "maxPathLen": 0}}, "cannot issue a CA"),
    ({"keyUsage": ["fly"]}, "unknown usage"),
    ({"extKeyUsage": ["serverAuth", "nope"]}, "unknown usage"),
    ({"sans": [{"type": "ip", "value": "not-an-ip"}]}, "not an IP address"),
    ({"sans": [{"type": "x400Address", "value": "x"}]}, "not supported"),
    ({"extensions": [{"id": "2.5.29.14", "value": "AA=="}]}, "set by the CA"),
    ({"extensions": [{"id": "1.2.3", "value": "***"}]}, "not valid base64"),
    ({"extensions": [{"id": "2.5.29.15", "value": "AwIHgA=="}], "keyUsage": ["digitalSignature"]}, "twice"),
    ({"subject": {"commonName": 5}}, "must be a string"),
    ({"policyIdentifiers": ["1.x"]}, "not an OID"),
])
def test_wrong_fields_are_refused_with_a_clear_error(doc: dict[str, object], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        templated_leaf(doc)


def test_hostile_templates_get_clear_errors() -> None:
    with pytest.raises(TemplateError, match="unexpected EOF"):
        Template('{"subject": {{ if .x }}')
    with pytest.raises(TemplateError, match="output exceeds"):
        Template('{"subject": "{{ range until 100000 }}{{ printf "%100s" "x" }}{{ end }}"}').render({})
    with pytest.raises(TemplateError, match="too deep"):
        Template("{{ with . }}" * 300 + "{}" + "{{ end }}" * 300)


def test_step_go_field_names_and_json_names_both_work() -> None:
    """Templates read `.Subject.CommonName` and `.Value` (Go fields) while toJson writes step's JSON."""
    names: list[x509.GeneralName] = [x509.DNSName("a.example.com"), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]
    data = template_data("a.example.com", names, rsa_key=True)
    text = ('{{ .Subject.CommonName }}|{{ toJson .Subject }}|{{ range .SANs }}{{ .Type }}={{ .Value }};{{ end }}|'
            '{{ toJson .SANs }}|{{ typeOf .Insecure.CR.PublicKey }}|{{ typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}')
    assert Template(text).render(data) == (
        'a.example.com|{"commonName":"a.example.com"}|dns=a.example.com;ip=10.0.0.1;|'
        '[{"type":"dns","value":"a.example.com"},{"type":"ip","value":"10.0.0.1"}]|*rsa.PublicKey|true')
    with pytest.raises(TemplateError, match=r"can.t evaluate field commonName in type x509util\.Subject"):
        Template("{{ .Subject.commonName }}").render(data)


def test_iid_and_admin_default_templates_read_the_request() -> None:
    from tests.helpers import make_csr

    pem, _ = make_csr("vm1.internal", ["vm1.internal", "10.1.1.1"])
    csr = x509.load_pem_x509_csr(pem.encode())
    data = template_data("", [], rsa_key=False, csr=csr)
    iid = templated_leaf(_render(corpus.DEFAULT_IID_LEAF, data))
    admin = templated_leaf(_render(corpus.DEFAULT_ADMIN_LEAF, data))
    for leaf in (iid, admin):
        assert leaf.common_name == "vm1.internal"
        assert [str(getattr(n, "value", "")) for n in leaf.sans] == ["vm1.internal", "10.1.1.1"]


def test_the_request_reads_the_same_field_by_field_or_whole() -> None:
    """`.Insecure.CR`'s fields are computed when first read: each read alone, and toJson of the
    whole request, give the CSR's subject, names by type and extensions."""
    import json

    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([
        x509.DNSName("a.example.com"), x509.IPAddress(ipaddress.ip_address("10.0.0.9")),
        x509.RFC822Name("ops@example.com"), x509.UniformResourceIdentifier("spiffe://example.com/a"),
        x509.DNSName("b.example.com")])
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, "a.example.com")]))
           .add_extension(san, critical=False).sign(key, hashes.SHA256()))
    fields = ["Subject.CommonName", "DNSNames", "IPAddresses", "EmailAddresses", "URIs"]
    want = ["a.example.com", "[a.example.com b.example.com]", "[10.0.0.9]", "[ops@example.com]",
            "[spiffe://example.com/a]"]
    for field, expected in zip(fields, want, strict=True):
        assert Template("{{ .Insecure.CR.%s }}" % field).render(template_data("", [], rsa_key=False, csr=csr)) == expected
    whole = json.loads(Template("{{ toJson .Insecure.CR }}").render(template_data("", [], rsa_key=False, csr=csr)))
    assert whole["subject"]["organization"] == ["Ex"] and whole["subject"]["commonName"] == "a.example.com"
    assert (whole["dnsNames"], whole["ipAddresses"], whole["emailAddresses"], whole["uris"]) == (
        ["a.example.com", "b.example.com"], ["10.0.0.9"], ["ops@example.com"], ["spiffe://example.com/a"])
    assert [e["id"] for e in whole["extensions"]] == ["2.5.29.17"]
    assert base64.b64decode(whole["extensions"][0]["value"]) == san.public_bytes()
    # Without a CSR, the fields are Go's zero values.
    assert Template("{{ toJson .Insecure.CR.DNSNames }}").render(template_data("", [], rsa_key=False)) == "null"


def _dns_syntax_by_label(name: str) -> bool:
    """The label-by-label check the one-regex `_dns_syntax` replaced: the reference it must equal."""
    import re

    label = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    if labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    return all(label.fullmatch(part) for part in labels)


_NAME_PARTS = ["a", "Z9", "-", "x-y", "*", ".", "..", "_", "a" * 63, "b" * 64, "é", "1", "\n"]


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.lists(st.sampled_from(_NAME_PARTS), max_size=8) | st.text(max_size=20))
def test_dns_name_check_equals_the_label_by_label_rule(parts: list[str] | str) -> None:
    from shared.x509.template_names import _dns_syntax

    name = parts if isinstance(parts, str) else "".join(parts)
    assert _dns_syntax(name) == _dns_syntax_by_label(name), name


@pytest.mark.parametrize("name, ok", [
    ("app.example.com", True), ("*.example.com", True), ("*", False), ("*.", False), ("a.", False),
    ("-a.example", False), ("a-.example", False), ("a.*.example", False), ("x" * 64, False),
    (".".join(["a" * 63] * 4), False), (".".join(["a" * 62] * 4), True), ("", False), ("a\n", False),
])
def test_dns_names_a_template_may_put_in_a_certificate(name: str, ok: bool) -> None:
    from shared.x509.template_names import _dns_syntax

    assert _dns_syntax(name) is ok


def test_an_extension_set_twice_is_refused() -> None:
    """A raw extension repeating a named field's extension, or another raw one, is refused; one raw
    extension beside the named fields is not."""
    der = base64.b64encode(b"\x03\x02\x07\x80").decode()  # a KeyUsage BIT STRING
    ku = {"id": "2.5.29.15", "critical": True, "value": der}
    other = {"id": "1.3.6.1.4.1.99999.1", "critical": False, "value": base64.b64encode(b"\x05\x00").decode()}
    for doc in ({"keyUsage": ["digitalSignature"], "extensions": [ku]}, {"extensions": [other, other]}):
        with pytest.raises(TemplateError, match="extension twice"):
            templated_leaf({"sans": [{"type": "dns", "value": "a.example"}], **doc})
    leaf = templated_leaf({"sans": [{"type": "dns", "value": "a.example"}], "keyUsage": ["digitalSignature"],
                           "extensions": [other]})
    assert [e.oid.dotted_string for e in leaf.extensions][-1] == "1.3.6.1.4.1.99999.1"
