"""A rendered X.509 template's names: its subject as an X.509 Name in Go's order, and its SANs.

Split from `shared.x509.templated` (the leaf a rendered template describes), with the small
checks both use (`_strings`, `_oid`): the subject and SANs are the parts of a leaf that change
with every certificate, so their cost per leaf is kept apart and in view.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from shared.templates.errors import TemplateError

# pkix.Name.ToRDNSequence's order, which step-ca's subjects follow.
SUBJECT_FIELDS = (
    ("country", NameOID.COUNTRY_NAME), ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME), ("locality", NameOID.LOCALITY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME), ("streetAddress", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE), ("serialNumber", NameOID.SERIAL_NUMBER),
    ("commonName", NameOID.COMMON_NAME),
)

def _fail(message: str) -> TemplateError:
    return TemplateError(message)


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if type(value) is str:
        return [value]
    if type(value) is list:
        for v in value:  # a loop, not all() over a generator: this runs for every list field of every leaf
            if type(v) is not str:
                break
        else:
            return list(value)
    raise _fail(f"field {field!r} must be a string or a list of strings")


def _string_tuple(value: Any, field: str) -> tuple[str, ...]:
    """`_strings` as a tuple (the key of the extension caches below), without a list copy between."""
    if type(value) is list:
        for v in value:
            if type(v) is not str:
                break
        else:
            return tuple(value)
    return tuple(_strings(value, field))


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
    rdns: list[x509.RelativeDistinguishedName] = []
    try:
        fields = _subject_fields(tuple(value)) if len(value) <= 16 else SUBJECT_FIELDS  # the cache key small
        for key, oid in fields:
            if key not in value:
                continue
            item = value[key]
            if item is None:
                continue
            for text in ((item,) if type(item) is str else _strings(item, f"{field}.{key}")):
                if text:
                    rdns.append(_rdn(oid, text) if oid not in _PER_CERTIFICATE else _one_rdn(oid, text))
        for extra in value.get("extraNames") or []:
            if not isinstance(extra, dict) or not isinstance(extra.get("value"), str):
                raise _fail(f"{field}.extraNames: each entry needs a type (OID) and a string value")
            rdns.append(_one_rdn(_oid(extra.get("type"), f"{field}.extraNames"), extra["value"]))
    except ValueError as exc:
        raise _fail(f"{field}: {exc}") from None
    return x509.Name(rdns)


@functools.lru_cache(maxsize=256)
def _subject_fields(keys: tuple[str, ...]) -> tuple[tuple[str, x509.ObjectIdentifier], ...]:
    """The attribute fields among a subject's keys, in Go's order: a template writes the same keys
    for every leaf, so the walk over all nine is made once per key set (unknown keys are ignored)."""
    present = set(keys)
    return tuple((key, oid) for key, oid in SUBJECT_FIELDS if key in present)


def _one_rdn(oid: x509.ObjectIdentifier, text: str) -> x509.RelativeDistinguishedName:
    """One attribute in its own RDN, as `x509.Name` makes of each attribute given it."""
    return x509.RelativeDistinguishedName([x509.NameAttribute(oid, text)])


# A provisioner's template names the same organization, country, locality... for every leaf: those
# RDNs (immutable) are built once. The common name and serial number change per certificate and
# are built each time (caching them would only hold request data). Bounded; ValueError is not cached.
_PER_CERTIFICATE = frozenset({NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER})
_rdn = functools.lru_cache(maxsize=1024)(_one_rdn)


def _ip(text: str, field: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _fail(f"{field}: {text!r} is not an IP address") from None


def _general_names(doc: dict[str, Any]) -> tuple[list[x509.GeneralName], tuple[str, ...]]:
    """dnsNames/ipAddresses/emailAddresses/uris plus `sans`, in the default profile's order, and the
    same names as text (as `names.sans_of` reads them back from the certificate)."""
    get = doc.get
    # Most templates give `sans` only: the other lists cost a lookup each when absent.
    raw = get("dnsNames")
    dns = _strings(raw, "dnsNames") if raw is not None else []
    raw = get("ipAddresses")
    ips = [_ip(t, "ipAddresses") for t in _strings(raw, "ipAddresses")] if raw is not None else []
    raw = get("emailAddresses")
    emails = _strings(raw, "emailAddresses") if raw is not None else []
    raw = get("uris")
    uris = _strings(raw, "uris") if raw is not None else []
    sans = get("sans") or []
    if type(sans) is not list:  # what json.loads makes of a JSON array
        raise _fail("field 'sans' must be a list")
    for san in sans:
        if type(san) is not dict or type(text := san.get("value")) is not str:
            raise _fail("each entry of 'sans' needs a type and a string value")
        kind = san.get("type") or "auto"
        kind = _SAN_TYPES.get(kind) or (kind.lower() if type(kind) is str else str(kind).lower())
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
    for name in dns:  # a template (or a webhook's data in it) must not put a malformed name in the certificate
        if not (0 < len(name) <= 253 and _DNS_MATCH(name) is not None):  # _dns_syntax, inline
            raise _fail(f"dnsNames: {name!r} is not a DNS name")
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


_SAN_TYPES = {"dns": "dns", "ip": "ip", "email": "email", "uri": "uri", "auto": "auto"}  # as written: no lower()
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
# The whole name in one match (a match per label was most of the SAN check's time): labels of 1-63
# letters, digits and inner hyphens, dot-separated, optionally after a `*.` wildcard.
_DNS_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


_DNS_MATCH = _DNS_NAME.fullmatch


def _dns_syntax(name: str) -> bool:
    """RFC 5280's preferred name syntax (letters of either case, digit-only labels allowed), `*.` wildcard."""
    return 0 < len(name) <= 253 and _DNS_NAME.fullmatch(name) is not None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
