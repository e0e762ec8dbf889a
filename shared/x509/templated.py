"""The certificate a rendered step-ca X.509 template describes (reference section 4.4).

A provisioner's template renders to JSON in step's `x509util.Certificate` shape; this module turns
that JSON into the subject and the extensions of a leaf, in the order Cirrus's default profile
uses, so step's DefaultLeafTemplate yields today's default leaf byte for byte. The public key
always comes from the request; SKI and AKI are computed at signing; anything a template cannot be
trusted with (a CA certificate, the key identifiers) is refused with a clear error.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.templates.errors import TemplateError
from shared.templates.fields import decode_rendered
from shared.x509.profile import encoded
from shared.x509.template_data import go_certificate_request, go_sans, go_subject, template_data
from shared.x509.template_names import (
    _fail,
    _general_names,
    _oid,
    _string_tuple,
    _strings,
    subject_name,
)

if TYPE_CHECKING:
    from shared.templates import Template

KEY_USAGE_NAMES = {
    "digitalsignature": "digital_signature", "contentcommitment": "content_commitment",
    "nonrepudiation": "content_commitment", "keyencipherment": "key_encipherment",
    "dataencipherment": "data_encipherment", "keyagreement": "key_agreement", "certsign": "key_cert_sign",
    "crlsign": "crl_sign", "encipheronly": "encipher_only", "decipheronly": "decipher_only",
}
EXT_KEY_USAGE_NAMES = {
    "any": x509.ObjectIdentifier("2.5.29.37.0"), "serverauth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientauth": ExtendedKeyUsageOID.CLIENT_AUTH, "codesigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailprotection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsecendsystem": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsectunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"), "ipsecuser": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING, "ocspsigning": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoftservergatedcrypto": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscapeservergatedcrypto": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoftcommercialcodesigning": x509.ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoftkernelcodesigning": x509.ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}
_COMPUTED = {x509.SubjectKeyIdentifier.oid, x509.AuthorityKeyIdentifier.oid}


class TemplatedLeaf(NamedTuple):
    """Subject, SANs and extensions (without SKI/AKI and the CA's own CDP/AIA/provisioner extensions).

    A NamedTuple, immutable as a frozen dataclass is, built for every templated leaf at a sixth
    of a frozen dataclass's cost (whose __init__ sets each field through object.__setattr__)."""

    subject: x509.Name
    common_name: str
    sans: tuple[x509.GeneralName, ...]
    extensions: tuple[x509.Extension[x509.ExtensionType], ...]
    not_before: str | None
    not_after: str | None
    san_strings: tuple[str, ...] = ()  # the SANs as `names.sans_of` reads them back (records, events)


def _key_usage(names: list[str]) -> x509.KeyUsage:
    flags = dict.fromkeys(KEY_USAGE_NAMES.values(), False)
    for name in names:
        attr = KEY_USAGE_NAMES.get(name.lower())
        if attr is None:
            raise _fail(f"keyUsage: unknown usage {name!r}")
        flags[attr] = True
    if (flags["encipher_only"] or flags["decipher_only"]) and not flags["key_agreement"]:
        raise _fail("keyUsage: encipherOnly and decipherOnly need keyAgreement")
    return x509.KeyUsage(**flags)


# Templates name the same few usages for every leaf: their extensions are built and DER-encoded once
# (`encoded`, as the default profile does). Bounded: names outside the tables are refused first.
@functools.lru_cache(maxsize=256)
def _key_usage_extension(names: tuple[str, ...]) -> x509.Extension[x509.ExtensionType]:
    """Keyed by the names as the template wrote them (case folded here, once per distinct tuple)."""
    ku = _key_usage(list(names))
    return encoded(x509.Extension(ku.oid, True, ku))


@functools.lru_cache(maxsize=256)
def _ext_key_usage_extension(names: tuple[str, ...], oids: tuple[str, ...]) -> x509.Extension[x509.ExtensionType]:
    usages: list[x509.ObjectIdentifier] = []
    for name in names:  # as the template wrote them: case folded here, once per distinct tuple
        oid = EXT_KEY_USAGE_NAMES.get(name.lower())
        if oid is None:
            raise _fail(f"extKeyUsage: unknown usage {name!r}")
        usages.append(oid)
    usages += [_oid(t, "unknownExtKeyUsage") for t in oids]
    eku = x509.ExtendedKeyUsage(usages)
    return encoded(x509.Extension(eku.oid, False, eku))


@functools.lru_cache(maxsize=256)
def _policies_extension(oids: tuple[str, ...]) -> x509.Extension[x509.ExtensionType]:
    """Certificate policies by OID, built and encoded once (a provisioner's template names the same few)."""
    cp = x509.CertificatePolicies([x509.PolicyInformation(_oid(t, "policyIdentifiers"), None) for t in oids])
    return encoded(x509.Extension(cp.oid, False, cp))


_LEAF_BASIC_CONSTRAINTS = encoded(x509.Extension(x509.BasicConstraints.oid, True,
                                                 x509.BasicConstraints(ca=False, path_length=None)))


def _b64(text: Any, field: str) -> bytes:
    if not isinstance(text, str):
        raise _fail(f"{field} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _fail(f"{field} is not valid base64") from None


def _name_constraints(value: Any) -> x509.Extension[x509.ExtensionType] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail("field 'nameConstraints' must be an object")

    def collect(prefix: str) -> list[x509.GeneralName] | None:
        out: list[x509.GeneralName] = []
        out += [x509.DNSName(t) for t in _strings(value.get(f"{prefix}DNSDomains"), f"{prefix}DNSDomains")]
        for t in _strings(value.get(f"{prefix}IPRanges"), f"{prefix}IPRanges"):
            try:
                out.append(x509.IPAddress(ipaddress.ip_network(t)))
            except ValueError:
                raise _fail(f"nameConstraints.{prefix}IPRanges: {t!r} is not a CIDR range") from None
        out += [x509.RFC822Name(t) for t in _strings(value.get(f"{prefix}EmailAddresses"), f"{prefix}EmailAddresses")]
        uris = _strings(value.get(f"{prefix}URIDomains"), f"{prefix}URIDomains")
        out += [x509.UniformResourceIdentifier(t) for t in uris]
        return out or None

    permitted, excluded = collect("permitted"), collect("excluded")
    if permitted is None and excluded is None:
        return None
    nc = x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=excluded)
    return x509.Extension(nc.oid, bool(value.get("critical")), nc)


def templated_leaf(doc: dict[str, Any]) -> TemplatedLeaf:
    """The leaf described by a rendered (and decoded) X.509 template."""
    raw_subject = doc.get("subject")
    subject = subject_name(raw_subject)
    if type(raw_subject) is dict and type(raw_subject.get("commonName")) is str and raw_subject["commonName"]:
        common_name = raw_subject["commonName"]  # the first CN attribute, when the template gives one string
    else:
        cn_attrs = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(cn_attrs[0].value) if cn_attrs else ""
    exts: list[x509.Extension[x509.ExtensionType]] = []
    get = doc.get
    # Fields a template leaves out (most of them) cost one lookup each: every call here runs per leaf.
    usages = get("keyUsage")
    if usages is not None and usages != []:
        exts.append(_key_usage_extension(_string_tuple(usages, "keyUsage")))
    ekus, unknown = get("extKeyUsage"), get("unknownExtKeyUsage")
    if ekus is not None or unknown is not None:
        eku_names = _string_tuple(ekus, "extKeyUsage")
        unknown_oids = _string_tuple(unknown, "unknownExtKeyUsage")
        if eku_names or unknown_oids:
            exts.append(_ext_key_usage_extension(eku_names, unknown_oids))
    general, san_strings = _general_names(doc)
    if general:
        san = x509.SubjectAlternativeName(general)
        exts.append(x509.Extension(san.oid, not common_name and len(subject) == 0, san))
    bc = get("basicConstraints")
    if bc is not None:
        if not isinstance(bc, dict):
            raise _fail("field 'basicConstraints' must be an object")
        if bc.get("isCA"):
            raise _fail("basicConstraints: a provisioner template cannot issue a CA certificate")
        exts.append(_LEAF_BASIC_CONSTRAINTS)
    policies = get("policyIdentifiers")
    if policies is not None:
        policy_oids = _string_tuple(policies, "policyIdentifiers")
        if policy_oids:
            exts.append(_policies_extension(policy_oids))
    nc = get("nameConstraints")
    if nc is not None:
        nc = _name_constraints(nc)
        if nc is not None:
            exts.append(nc)
    raws = get("extensions") or []
    for raw in raws:
        if not isinstance(raw, dict):
            raise _fail("each entry of 'extensions' needs an id, critical and a base64 DER value")
        oid = _oid(raw.get("id"), "extensions")
        if oid in _COMPUTED:
            raise _fail(f"extensions: {oid.dotted_string} is set by the CA")
        value = x509.UnrecognizedExtension(oid, _b64(raw.get("value"), "extensions.value"))
        exts.append(x509.Extension(oid, bool(raw.get("critical")), value))
    if raws:  # each named field adds one extension of its own type: only raw ones can repeat an OID
        oids = [e.oid for e in exts]
        if len(set(oids)) != len(oids):
            raise _fail("the template sets an extension twice")
    not_before, not_after = doc.get("notBefore"), doc.get("notAfter")
    return TemplatedLeaf(subject, common_name, tuple(general), tuple(exts),
                         not_before if isinstance(not_before, str) else None,
                         not_after if isinstance(not_after, str) else None, san_strings)


def render_leaf(template: Template, data: Mapping[str, Any]) -> tuple[dict[str, Any], TemplatedLeaf]:
    """Render a provisioner's X.509 template over `data` and map the JSON onto the leaf (both are
    returned: the preview prints the JSON, issuance signs the leaf): the one path
    issuance (`shared.authority`) and `cirrus template render` both take, so a preview fails exactly
    where issuance would.

    Raises:
        TemplateError: named for the template (with its line where the failure has one): it fails to
        render or calls `fail`, renders something that is not the JSON of a certificate, sets a field
        issuance refuses, or gives neither a common name nor a SAN.
    """
    name = template.name
    try:
        doc = decode_rendered(template.render(data), ssh=False, name=name)
        leaf = templated_leaf(doc)
    except TemplateError as exc:
        if exc.name == name:
            raise
        raise TemplateError(exc.message, exc.line, name, failed=exc.failed, reason=exc.reason) from exc
    if not leaf.sans and not leaf.common_name:
        raise TemplateError("the certificate needs a subject alternative name", 0, name)
    return doc, leaf


def refusal_message(exc: TemplateError) -> str:
    """What issuance answers for a template that failed: step-ca's own message for `fail`, else the
    error with the template's name and line."""
    return exc.reason if exc.failed else f"certificate template: {exc}"


__all__ = [
    "TemplatedLeaf",
    "go_certificate_request",
    "go_sans",
    "go_subject",
    "refusal_message",
    "render_leaf",
    "subject_name",
    "template_data",
    "templated_leaf",
]
