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
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.templates.errors import TemplateError
from shared.templates.values import GoStruct, GoTyped, Lazy, PreparedData, StructLayout, normalize
from shared.x509.profile import encoded

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
# pkix.Name.ToRDNSequence's order, which step-ca's subjects follow.
SUBJECT_FIELDS = (
    ("country", NameOID.COUNTRY_NAME), ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME), ("locality", NameOID.LOCALITY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME), ("streetAddress", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE), ("serialNumber", NameOID.SERIAL_NUMBER),
    ("commonName", NameOID.COMMON_NAME),
)
_COMPUTED = {x509.SubjectKeyIdentifier.oid, x509.AuthorityKeyIdentifier.oid}


@dataclass(frozen=True, slots=True)
class TemplatedLeaf:
    """Subject, SANs and extensions (without SKI/AKI and the CA's own CDP/AIA/provisioner extensions)."""

    subject: x509.Name
    common_name: str
    sans: tuple[x509.GeneralName, ...]
    extensions: tuple[x509.Extension[x509.ExtensionType], ...]
    not_before: str | None
    not_after: str | None
    san_strings: tuple[str, ...] = ()  # the SANs as `names.sans_of` reads them back (records, events)


def _fail(message: str) -> TemplateError:
    return TemplateError(message)


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if type(value) is str:
        return [value]
    if type(value) is list and all(type(v) is str for v in value):
        return list(value)
    raise _fail(f"field {field!r} must be a string or a list of strings")


def _oid(text: Any, field: str) -> x509.ObjectIdentifier:
    if not isinstance(text, str):
        raise _fail(f"{field}: an OID must be a string")
    try:
        return x509.ObjectIdentifier(text)
    except ValueError:
        raise _fail(f"{field}: {text!r} is not an OID") from None


def subject_name(value: Any, field: str = "subject") -> x509.Name:
    """A subject object (or a bare common name) as an X.509 Name in Go's attribute order."""
    if value is None:
        return x509.Name([])
    if isinstance(value, str):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)] if value else [])
    if not isinstance(value, dict):
        raise _fail(f"field {field!r} must be an object or a string")
    attrs: list[x509.NameAttribute[str]] = []
    try:
        for key, oid in SUBJECT_FIELDS:
            item = value.get(key)
            if item is None:
                continue
            if type(item) is str:
                if item:
                    attrs.append(x509.NameAttribute(oid, item))
                continue
            for text in _strings(item, f"{field}.{key}"):
                if text:
                    attrs.append(x509.NameAttribute(oid, text))
        for extra in value.get("extraNames") or []:
            if not isinstance(extra, dict) or not isinstance(extra.get("value"), str):
                raise _fail(f"{field}.extraNames: each entry needs a type (OID) and a string value")
            attrs.append(x509.NameAttribute(_oid(extra.get("type"), f"{field}.extraNames"), extra["value"]))
    except ValueError as exc:
        raise _fail(f"{field}: {exc}") from None
    return x509.Name(attrs)


def _ip(text: str, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _fail(f"{field}: {text!r} is not an IP address") from None


def _general_names(doc: dict[str, Any]) -> tuple[list[x509.GeneralName], tuple[str, ...]]:
    """dnsNames/ipAddresses/emailAddresses/uris plus `sans`, in the default profile's order, and the
    same names as text (as `names.sans_of` reads them back from the certificate)."""
    get = doc.get
    dns = _strings(get("dnsNames"), "dnsNames")
    raw_ips = get("ipAddresses")
    ips = [_ip(t, "ipAddresses") for t in _strings(raw_ips, "ipAddresses")] if raw_ips is not None else []
    emails = _strings(get("emailAddresses"), "emailAddresses")
    uris = _strings(get("uris"), "uris")
    sans = get("sans") or []
    if not isinstance(sans, list):
        raise _fail("field 'sans' must be a list")
    for san in sans:
        if not isinstance(san, dict) or not isinstance(san.get("value"), str):
            raise _fail("each entry of 'sans' needs a type and a string value")
        kind = san.get("type") or "auto"
        kind = kind.lower() if type(kind) is str else str(kind).lower()
        text = san["value"]
        if kind == "auto":
            kind = "ip" if _is_ip(text) else "email" if "@" in text else "uri" if "://" in text else "dns"
        if kind == "dns":
            dns.append(text)
        elif kind == "ip":
            ips.append(_ip(text, "sans"))
        elif kind == "email":
            emails.append(text)
        elif kind == "uri":
            uris.append(text)
        else:
            raise _fail(f"sans: type {san.get('type')!r} is not supported")
    out: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    strings = list(dns)
    if ips:
        out += [x509.IPAddress(i) for i in ips]
        strings += [str(i) for i in ips]
    if emails:
        out += [x509.RFC822Name(e) for e in emails]
        strings += emails
    if uris:
        out += [x509.UniformResourceIdentifier(u) for u in uris]
        strings += uris
    return out, tuple(strings)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
    ku = _key_usage(list(names))
    return encoded(x509.Extension(ku.oid, True, ku))


@functools.lru_cache(maxsize=256)
def _ext_key_usage_extension(names: tuple[str, ...], oids: tuple[str, ...]) -> x509.Extension[x509.ExtensionType]:
    usages: list[x509.ObjectIdentifier] = []
    for name in names:
        oid = EXT_KEY_USAGE_NAMES.get(name)
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
    usages = _strings(doc.get("keyUsage"), "keyUsage")
    if usages:
        exts.append(_key_usage_extension(tuple(u.lower() for u in usages)))
    ekus = tuple(n.lower() for n in _strings(doc.get("extKeyUsage"), "extKeyUsage"))
    unknown = tuple(_strings(doc.get("unknownExtKeyUsage"), "unknownExtKeyUsage"))
    if ekus or unknown:
        exts.append(_ext_key_usage_extension(ekus, unknown))
    general, san_strings = _general_names(doc)
    if general:
        san = x509.SubjectAlternativeName(general)
        exts.append(x509.Extension(san.oid, not common_name and len(subject) == 0, san))
    bc = doc.get("basicConstraints")
    if bc is not None:
        if not isinstance(bc, dict):
            raise _fail("field 'basicConstraints' must be an object")
        if bc.get("isCA"):
            raise _fail("basicConstraints: a provisioner template cannot issue a CA certificate")
        exts.append(x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(ca=False, path_length=None)))
    policies = tuple(_strings(doc.get("policyIdentifiers"), "policyIdentifiers"))
    if policies:
        exts.append(_policies_extension(policies))
    nc = _name_constraints(doc.get("nameConstraints"))
    if nc is not None:
        exts.append(nc)
    for raw in doc.get("extensions") or []:
        if not isinstance(raw, dict):
            raise _fail("each entry of 'extensions' needs an id, critical and a base64 DER value")
        oid = _oid(raw.get("id"), "extensions")
        if oid in _COMPUTED:
            raise _fail(f"extensions: {oid.dotted_string} is set by the CA")
        value = x509.UnrecognizedExtension(oid, _b64(raw.get("value"), "extensions.value"))
        exts.append(x509.Extension(oid, bool(raw.get("critical")), value))
    oids = [e.oid for e in exts]
    if len(set(oids)) != len(oids):
        raise _fail("the template sets an extension twice")
    not_before, not_after = doc.get("notBefore"), doc.get("notAfter")
    return TemplatedLeaf(subject, common_name, tuple(general), tuple(exts),
                         not_before if isinstance(not_before, str) else None,
                         not_after if isinstance(not_after, str) else None, san_strings)


_NAME_FIELDS = (
    ("Country", "country", NameOID.COUNTRY_NAME), ("Organization", "organization", NameOID.ORGANIZATION_NAME),
    ("OrganizationalUnit", "organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("Locality", "locality", NameOID.LOCALITY_NAME), ("Province", "province", NameOID.STATE_OR_PROVINCE_NAME),
    ("StreetAddress", "streetAddress", NameOID.STREET_ADDRESS), ("PostalCode", "postalCode", NameOID.POSTAL_CODE),
)


_SUBJECT_LAYOUT = StructLayout("x509util.Subject", [
    *((go, js, True) for go, js, _ in _NAME_FIELDS), ("SerialNumber", "serialNumber", True),
    ("CommonName", "commonName", True), ("ExtraNames", "extraNames", True)])
_SAN_LAYOUT = StructLayout("x509util.SubjectAlternativeName",
                           [("Type", "type", False), ("Value", "value", False), ("ASN1Value", "asn1Value", True)])
_SAN_KINDS: dict[type, str] = {x509.DNSName: "dns", x509.IPAddress: "ip", x509.RFC822Name: "email",
                               x509.UniformResourceIdentifier: "uri"}


def go_subject(name: x509.Name | None = None, common_name: str = "") -> GoStruct:
    """x509util.Subject: Go field names for templates, step's JSON names for toJson."""
    if name is None:  # the usual leaf: a common name only
        values: dict[str, Any] = dict.fromkeys(("Country", "Organization", "OrganizationalUnit", "Locality",
                                                "Province", "StreetAddress", "PostalCode", "ExtraNames"))
        values["SerialNumber"] = ""
        values["CommonName"] = common_name
        return GoStruct.of(_SUBJECT_LAYOUT, values)
    values = {}
    for go, _, oid in _NAME_FIELDS:
        values[go] = [str(a.value) for a in name.get_attributes_for_oid(oid)] or None
    serial = name.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    values["SerialNumber"] = str(serial[0].value) if serial else ""
    if not common_name:
        cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(cns[0].value) if cns else ""
    values["CommonName"] = common_name
    values["ExtraNames"] = None
    return GoStruct.of(_SUBJECT_LAYOUT, values)


def go_sans(general_names: list[x509.GeneralName]) -> list[GoStruct]:
    """[]x509util.SubjectAlternativeName: `.Type`/`.Value` in templates, type/value in JSON."""
    out: list[GoStruct] = []
    for name in general_names:
        kind = _SAN_KINDS.get(type(name))
        if kind is None:
            continue
        value = str(name.value) if kind == "ip" else name.value
        out.append(GoStruct.of(_SAN_LAYOUT, {"Type": kind, "Value": value, "ASN1Value": None}))
    return out


def _csr_names(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def _csr_extensions(csr: x509.CertificateSigningRequest) -> list[GoStruct] | None:
    extensions: list[GoStruct] = []
    for ext in csr.extensions:
        # step marks the request's SAN critical when its subject is empty (fixSubjectAltName).
        critical = ext.critical or (ext.oid == x509.SubjectAlternativeName.oid and len(csr.subject) == 0)
        try:
            der = ext.value.public_bytes()
        except (NotImplementedError, ValueError):
            continue
        extensions.append(GoStruct("x509util.Extension", [
            ("ID", "id", False, ext.oid.dotted_string), ("Critical", "critical", False, critical),
            ("Value", "value", False, base64.b64encode(der).decode())]))
    return extensions or None


def go_certificate_request(csr: x509.CertificateSigningRequest | None, *, rsa_key: bool) -> GoStruct:
    """*x509util.CertificateRequest as `.Insecure.CR` (the request's own, unverified names).

    The fields drawn from the CSR are `Lazy`: most templates read one of them (step's default leaf
    template only `.PublicKey`), and parsing the rest for every certificate was most of a
    template's cost per certificate.
    """
    if csr is None:
        values: dict[str, Any] = {"Version": 0, "Subject": go_subject(None), "DNSNames": None,
                                  "EmailAddresses": None, "IPAddresses": None, "URIs": None, "SANs": None,
                                  "Extensions": None}
    else:
        names: list[list[x509.GeneralName]] = []

        def of_type(kind: type[x509.GeneralName]) -> list[Any] | None:
            if not names:
                names.append(_csr_names(csr))
            found = [str(g.value) if kind is x509.IPAddress else g.value for g in names[0] if isinstance(g, kind)]
            return found or None

        values = {"Version": 0, "Subject": Lazy(lambda: go_subject(csr.subject)),
                  "DNSNames": Lazy(lambda: of_type(x509.DNSName)),
                  "EmailAddresses": Lazy(lambda: of_type(x509.RFC822Name)),
                  "IPAddresses": Lazy(lambda: of_type(x509.IPAddress)),
                  "URIs": Lazy(lambda: of_type(x509.UniformResourceIdentifier)), "SANs": None,
                  "Extensions": Lazy(lambda: _csr_extensions(csr))}
    values["SignatureAlgorithm"] = ""
    values["PublicKey"] = _RSA_KEY if rsa_key else _EC_KEY
    values["PublicKeyAlgorithm"] = "RSA" if rsa_key else "ECDSA"
    return GoStruct.of(_CR_LAYOUT, values)


_CR_LAYOUT = StructLayout("*x509util.CertificateRequest", [
    ("Version", "version", False), ("Subject", "subject", False), ("DNSNames", "dnsNames", False),
    ("EmailAddresses", "emailAddresses", False), ("IPAddresses", "ipAddresses", False), ("URIs", "uris", False),
    ("SANs", "sans", False), ("Extensions", "extensions", False), ("SignatureAlgorithm", "signatureAlgorithm", False),
    ("PublicKey", None, False), ("PublicKeyAlgorithm", None, False)])
_RSA_KEY = GoTyped("*rsa.PublicKey", "ptr", None, "&{...}")
_EC_KEY = GoTyped("*ecdsa.PublicKey", "ptr", None, "&{...}")


def template_data(common_name: str, general_names: list[x509.GeneralName], *, rsa_key: bool,
                  csr: x509.CertificateSigningRequest | None = None, token: Mapping[str, Any] | None = None,
                  user: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The data step-ca gives an X.509 template: `.Subject`, `.SANs`, `.Token`, `.Insecure.CR`,
    `.Insecure.User` and the provisioner's templateData as top-level keys (reference 4.2)."""
    data: dict[str, Any] = dict(extra or {})
    data.update({
        "Subject": go_subject(common_name=common_name),
        "SANs": go_sans(general_names),
        "Token": normalize(token if type(token) is dict else dict(token or {})),
        "Insecure": {"CR": go_certificate_request(csr, rsa_key=rsa_key), "User": normalize(dict(user or {}))},
    })
    # A plain dict to callers (other parts of issuance add `.Inventory`, `.Webhooks`); the keys built
    # here are already as Go sees them, so rendering does not copy them a second time.
    return PreparedData(data, _PREPARED)


_PREPARED = frozenset({"Subject", "SANs", "Token", "Insecure"})
