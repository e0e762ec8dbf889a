"""The data step-ca hands an X.509 template (reference section 4.2), built as Go would see it.

`.Subject`, `.SANs` and `.Insecure.CR` are step's own Go types (x509util.Subject,
SubjectAlternativeName, CertificateRequest): templates read them by Go field names while `toJson`
writes step's JSON names, so they are `GoStruct`s of layouts made once. The request's fields are
`Lazy` (computed when a template first reads them); the whole is a `PreparedData`, a plain dict to
callers (other parts of issuance add `.Inventory`, `.Webhooks`) whose Cirrus-built keys a render
does not copy again.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from shared.templates.values import GoStruct, GoTyped, Lazy, PreparedData, StructLayout, normalize

if TYPE_CHECKING:  # the template engine is imported by the first template, not by issuance
    from shared.templates.reads import Reads
    from shared.x509.names import SANs

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


_CN_ONLY: dict[str, Any] = {**dict.fromkeys(("Country", "Organization", "OrganizationalUnit", "Locality", "Province",
                                              "StreetAddress", "PostalCode")),
                            "SerialNumber": "", "CommonName": "", "ExtraNames": None}


def go_subject(name: x509.Name | None = None, common_name: str = "") -> GoStruct:
    """x509util.Subject: Go field names for templates, step's JSON names for toJson."""
    if name is None:  # the usual leaf: a common name only
        values: dict[str, Any] = _CN_ONLY.copy()  # a copy of a made dict: cheaper than building one
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


def go_sans(general_names: Sequence[x509.GeneralName]) -> list[GoStruct]:
    """[]x509util.SubjectAlternativeName: `.Type`/`.Value` in templates, type/value in JSON."""
    out: list[GoStruct] = []
    for name in general_names:
        kind = _SAN_KINDS.get(type(name))
        if kind is None:
            continue
        value = str(name.value) if kind == "ip" else name.value
        out.append(GoStruct.of(_SAN_LAYOUT, {"Type": kind, "Value": value, "ASN1Value": None}))
    return out


def _go_sans_of(sans: SANs) -> list[GoStruct]:
    """`go_sans(sans.general_names())` from the token's names as they are (DNS, IP, email, URI: the
    same order and text), without building the x509 objects only to read them back."""
    layout = _SAN_LAYOUT
    out = [GoStruct.of(layout, {"Type": "dns", "Value": d, "ASN1Value": None}) for d in sans.dns]
    if sans.ips or sans.emails or sans.uris:
        out += [GoStruct.of(layout, {"Type": "ip", "Value": str(i), "ASN1Value": None}) for i in sans.ips]
        out += [GoStruct.of(layout, {"Type": "email", "Value": e, "ASN1Value": None}) for e in sans.emails]
        out += [GoStruct.of(layout, {"Type": "uri", "Value": u, "ASN1Value": None}) for u in sans.uris]
    return out


def _csr_names(csr: x509.CertificateSigningRequest) -> list[x509.GeneralName]:
    try:
        return list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def _of_type(csr: x509.CertificateSigningRequest, kind: type[x509.GeneralName]) -> list[Any] | None:
    found = [str(g.value) if kind is x509.IPAddress else g.value for g in _csr_names(csr) if isinstance(g, kind)]
    return found or None


_CR_NAME_KINDS: dict[str, type[x509.GeneralName]] = {
    "DNSNames": x509.DNSName, "EmailAddresses": x509.RFC822Name, "IPAddresses": x509.IPAddress,
    "URIs": x509.UniformResourceIdentifier}
_CR_FROM_CSR = ("Subject", *_CR_NAME_KINDS, "Extensions")


def _cr_field(csr: x509.CertificateSigningRequest, name: str) -> Any:
    """One `.Insecure.CR` field drawn from the CSR, when a template first reads it."""
    if name == "Subject":
        return go_subject(csr.subject)
    if name == "Extensions":
        return _csr_extensions(csr)
    return _of_type(csr, _CR_NAME_KINDS[name])


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
        values = dict.fromkeys(_CR_FROM_CSR, Lazy(_cr_field, csr))
        values["Version"] = 0
        values["SANs"] = None
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


def template_data(common_name: str, general_names: list[x509.GeneralName] | SANs, *, rsa_key: bool,
                  csr: x509.CertificateSigningRequest | None = None, token: Mapping[str, Any] | None = None,
                  user: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
                  authorization_crt: x509.Certificate | None = None,
                  reads: Reads | None = None) -> dict[str, Any]:
    """The data step-ca gives an X.509 template: `.Subject`, `.SANs`, `.Token`, `.AuthorizationCrt`
    (X5C), the provisioner's templateData (`extra`) as top-level keys, `.Insecure.CR` and
    `.Insecure.User` (reference 4.2); `shared.webhooks` adds `.Webhooks`.

    In step-ca's order: a provisioner builds the names, the token and the authorizing certificate,
    then `provisioner.TemplateOptions` json.Unmarshals the provisioner's templateData over them (a
    templateData `Subject`, `SANs`, `Token` or `AuthorizationCrt` wins), and only then are the
    request's own values set under `.Insecure` (replacing any templateData `Insecure`);
    `.Insecure.User` exists only when the request sent `templateData` (`user` not None).

    `reads` (the template's `Template.data_reads`) builds only the keys the template reads, and of
    a token it reads only through claims, those claims: the render is the same (`shared.templates.reads`)
    and nothing else is built for every certificate. None (webhooks see the data too) builds it all.
    """
    # A plain dict to callers (other parts of issuance add `.Inventory`, `.Webhooks`); the keys built
    # here are already as Go sees them, so rendering does not copy them a second time.
    prepared = _PREPARED if not extra else _PREPARED.difference(extra)
    data = PreparedData({}, prepared)
    if reads is None or "Subject" in reads:
        data["Subject"] = go_subject(common_name=common_name)
    if reads is None or "SANs" in reads:  # the names as GeneralNames, or issuance's split token names
        data["SANs"] = (go_sans(general_names) if isinstance(general_names, (list, tuple))
                         else _go_sans_of(general_names))
    claims = None if reads is None else reads.get("Token", ())
    if claims is None:
        data["Token"] = normalize(token if type(token) is dict else dict(token or {}))
    elif claims:  # read only through these claims
        given = token or {}
        data["Token"] = normalize({c: given[c] for c in claims if c in given})
    if authorization_crt is not None and (reads is None or "AuthorizationCrt" in reads):
        from shared.x509.authorization_crt import go_x509_certificate

        data["AuthorizationCrt"] = go_x509_certificate(authorization_crt)
    if extra:
        if reads is None:
            data.update(extra)
        else:
            for key in reads:
                if key in extra:
                    data[key] = extra[key]
    # The request's templateData is checked (as Go would decode it) whether or not the template reads it.
    insecure_user = normalize(user if type(user) is dict else dict(user)) if user is not None else None
    if reads is None or "Insecure" in reads:
        insecure: dict[str, Any] = {"CR": go_certificate_request(csr, rsa_key=rsa_key)}
        if insecure_user is not None:
            insecure["User"] = insecure_user
        data["Insecure"] = insecure
    return data


_PREPARED = frozenset({"Subject", "SANs", "Token", "Insecure"})
