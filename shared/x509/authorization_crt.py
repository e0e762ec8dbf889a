"""`.AuthorizationCrt`: the certificate that authorized a request (X5C's leaf), as Go's `*x509.Certificate`.

step-ca hands templates the crypto/x509 struct itself, so templates reach it by Go field names
(`.AuthorizationCrt.Subject.CommonName`, `.AuthorizationCrt.DNSNames`, `.AuthorizationCrt.NotAfter`)
and `toJson` writes those same names (the struct has no JSON tags). The fields templates use are
given: Raw, Version, SerialNumber, Issuer, Subject, NotBefore, NotAfter, the SAN lists and
IsCA. Times print as Go prints a time.Time and encode as RFC 3339; IP addresses and URIs as
their text (Go's net.IP and *url.URL print and encode that way).
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from shared.templates.values import GoStruct, GoTyped

_PKIX_LISTS = (
    ("Country", NameOID.COUNTRY_NAME), ("Organization", NameOID.ORGANIZATION_NAME),
    ("OrganizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME), ("Locality", NameOID.LOCALITY_NAME),
    ("Province", NameOID.STATE_OR_PROVINCE_NAME), ("StreetAddress", NameOID.STREET_ADDRESS),
    ("PostalCode", NameOID.POSTAL_CODE),
)


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    found = name.get_attributes_for_oid(oid)
    return str(found[0].value) if found else ""


def pkix_name(name: x509.Name) -> GoStruct:
    """crypto/x509/pkix.Name (Go field names in JSON too)."""
    fields: list[tuple[str, str | None, bool, Any]] = []
    for go, oid in _PKIX_LISTS:
        values = [str(a.value) for a in name.get_attributes_for_oid(oid)]
        fields.append((go, go, False, values or None))
    fields.append(("SerialNumber", "SerialNumber", False, _first(name, NameOID.SERIAL_NUMBER)))
    fields.append(("CommonName", "CommonName", False, _first(name, NameOID.COMMON_NAME)))
    return GoStruct("pkix.Name", fields)


def go_time(when: dt.datetime) -> GoTyped:
    """A time.Time: printed as Go's String(), encoded as RFC 3339."""
    when = when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        fraction = f".{when.microsecond:06d}".rstrip("0")
        text += fraction
        stamp += fraction
    return GoTyped("time.Time", "struct", stamp + "Z", text + " +0000 UTC")


def go_x509_certificate(cert: x509.Certificate) -> GoStruct:
    """*x509.Certificate with the fields templates read."""
    der = cert.public_bytes(serialization.Encoding.DER)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        emails = san.get_values_for_type(x509.RFC822Name)
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except (x509.ExtensionNotFound, ValueError):
        dns, emails, ips, uris = [], [], [], []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError):
        is_ca = False
    serial = cert.serial_number
    return GoStruct("*x509.Certificate", [
        ("Raw", "Raw", False, GoTyped("[]uint8", "slice", base64.b64encode(der).decode(),
                                      "[" + " ".join(map(str, der)) + "]")),
        ("Version", "Version", False, cert.version.value + 1),
        ("SerialNumber", "SerialNumber", False, GoTyped("*big.Int", "ptr", serial, str(serial))),
        ("Issuer", "Issuer", False, pkix_name(cert.issuer)),
        ("Subject", "Subject", False, pkix_name(cert.subject)),
        ("NotBefore", "NotBefore", False, go_time(cert.not_valid_before_utc)),
        ("NotAfter", "NotAfter", False, go_time(cert.not_valid_after_utc)),
        ("IsCA", "IsCA", False, is_ca),
        ("DNSNames", "DNSNames", False, dns or None),
        ("EmailAddresses", "EmailAddresses", False, emails or None),
        ("IPAddresses", "IPAddresses", False, ips or None),
        ("URIs", "URIs", False, uris or None),
    ])
