"""Subject alternative names: classification and syntax checks.

A SAN string is classified as step-ca's `x509util.SplitSANs` does: an IP
address, else an email (contains "@"), else a URI (has a scheme), else a DNS
name. DNS names must be in preferred syntax (X509-06), lower-cased; IDNs must
already be A-labels.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}\Z")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*\Z")


@dataclass(frozen=True, slots=True)
class SANs:
    """SANs split by type, each in canonical form."""

    dns: tuple[str, ...] = ()
    ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    all: tuple[str, ...] = field(default=())

    def general_names(self) -> list[x509.GeneralName]:
        """The SAN extension's GeneralNames, DNS first."""
        out: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns]
        out += [x509.IPAddress(i) for i in self.ips]
        out += [x509.RFC822Name(e) for e in self.emails]
        out += [x509.UniformResourceIdentifier(u) for u in self.uris]
        return out


def is_dns_name(name: str, *, allow_wildcard: bool = True) -> bool:
    """True if `name` is a DNS name in preferred syntax (optionally `*.` wildcard).

    The last label may not be all digits (RFC 3696 s.2): `10.1` or `0.0` reads
    as an IPv4 address to `inet_aton` and to browsers, so it is not a host name.
    """
    if not name or len(name) > 253 or name.endswith("."):
        return False
    labels = name.split(".")
    if allow_wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _is_email(name: str) -> bool:
    local, _, domain = name.rpartition("@")
    return bool(_EMAIL_LOCAL.match(local)) and is_dns_name(domain.lower(), allow_wildcard=False)


def _shown(value: str) -> str:
    """A name as quoted in an error message: escaped, and cut short."""
    return repr(value[:80] + ("..." if len(value) > 80 else ""))


def check_uri(name: str) -> None:
    """Raise ValueError unless `name` is an absolute URI in printable ASCII (RFC 3986, RFC 5280 4.2.1.6).

    Control characters (a NUL cuts the name short for C relying parties),
    spaces and non-ASCII characters are refused, as Go's `url.Parse` refuses
    control characters.
    """
    if not name or not all(0x21 <= ord(c) <= 0x7E for c in name):
        raise ValueError(f"URI {_shown(name)} must be printable ASCII without spaces or control characters")
    try:
        parts = urlsplit(name)
    except ValueError as exc:
        raise ValueError(f"invalid URI {_shown(name)}") from exc
    if not parts.scheme or not _URI_SCHEME.match(parts.scheme):
        raise ValueError(f"URI {_shown(name)} has no scheme")


COMMON_NAME_MAX = 64  # RFC 5280 ub-common-name


def check_common_name(value: str) -> None:
    """Raise ValueError unless `value` can be a certificate's commonName.

    1 to 64 characters (RFC 5280's upper bound; `cryptography` refuses more
    when it builds the name), and no control characters or lone surrogates:
    a NUL or newline in a subject misleads relying parties that print or
    compare it as a C string.
    """
    if not value or len(value) > COMMON_NAME_MAX:
        raise ValueError(f"common name must be 1 to {COMMON_NAME_MAX} characters, got {len(value)}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) < 0xE000 for c in value):
        raise ValueError(f"common name {_shown(value)} contains a control character")


def _ip_literal(name: str) -> bool:
    literal = name.strip("[]")
    if ":" in literal or literal.replace(".", "").isdigit():
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            return False
        return True
    return False


def check_general_names(san: x509.SubjectAlternativeName) -> None:
    """Raise ValueError unless every name in a CSR's SAN extension is well formed for its type.

    The types matter: the request's names are compared with the token's type
    by type, so a name in the wrong type (an IP literal as a dNSName, an
    rfc822Name without "@") is refused here rather than read as another kind.
    Full syntax (DNS labels, email local parts) is checked later, against the
    names the token authorizes. Other name types are passed over: the CA does
    not copy them into certificates.
    """
    for gn in san:
        if isinstance(gn, x509.DNSName):
            value = gn.value
            if not value or not all(0x21 <= ord(c) <= 0x7E for c in value):
                raise ValueError(f"DNS name SAN {_shown(value)} must be printable ASCII without spaces")
            if _ip_literal(value):
                raise ValueError(f"DNS name SAN {_shown(value)} is an IP address; send it as an iPAddress SAN")
        elif isinstance(gn, x509.IPAddress):
            if not isinstance(gn.value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                raise ValueError("iPAddress SAN must be an address of 4 or 16 bytes")
        elif isinstance(gn, x509.RFC822Name):
            value = gn.value
            local, at, domain = value.rpartition("@")
            if not at or not local or not domain:
                raise ValueError(f"email SAN {_shown(value)} must be an address of the form local@domain")
            if not all(0x21 <= ord(c) <= 0x7E for c in value):
                raise ValueError(f"email SAN {_shown(value)} must be printable ASCII without spaces")
        elif isinstance(gn, x509.UniformResourceIdentifier):
            check_uri(gn.value)


def split_sans(names: list[str] | tuple[str, ...]) -> SANs:
    """Classify and canonicalise SAN strings, dropping exact duplicates.

    Raises:
        ValueError: a name is empty or not valid for the type it classifies as.
    """
    dns: list[str] = []
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    emails: list[str] = []
    uris: list[str] = []
    seen: list[str] = []
    for raw in names:
        if not isinstance(raw, str) or not raw.strip():
            raise ValueError("empty subject alternative name")
        name = raw.strip()
        ip = None
        # Only digits-and-dots (IPv4) or a colon (IPv6) can parse as an address:
        # skipping the parser (and its exception) for everything else saves most
        # of the cost of classifying a DNS name.
        literal = name.strip("[]")
        if ":" in literal or literal.replace(".", "").isdigit():
            try:
                ip = ipaddress.ip_address(literal)
            except ValueError:
                ip = None
        if ip is not None:
            if ip not in ips:
                ips.append(ip)
                seen.append(str(ip))
            continue
        if "@" in name and "://" not in name:
            if not _is_email(name):
                raise ValueError(f"invalid email address {name!r}")
            canon = name.rpartition("@")[0] + "@" + name.rpartition("@")[2].lower()
            if canon not in emails:
                emails.append(canon)
                seen.append(canon)
            continue
        scheme = name.split(":", 1)[0] if ":" in name else ""
        if scheme and _URI_SCHEME.match(scheme) and not is_dns_name(name.lower()):
            check_uri(name)
            if name not in uris:
                uris.append(name)
                seen.append(name)
            continue
        lower = name.lower()
        if not is_dns_name(lower):
            raise ValueError(f"invalid DNS name {name!r}")
        if lower not in dns:
            dns.append(lower)
            seen.append(lower)
    return SANs(tuple(dns), tuple(ips), tuple(emails), tuple(uris), tuple(seen))


def typed_sans_of(csr: x509.CertificateSigningRequest) -> SANs:
    """The CSR's SANs by their own GeneralName types, canonicalised as `split_sans` does.

    Unlike `split_sans(sans_of(csr))`, a name keeps the type the request gave
    it: a URI that reads as an IP address stays a URI, and is then compared
    with the token's URIs (step-ca's validators compare type by type).

    Raises:
        ValueError: a name is not valid for its type.
    """
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SANs()
    check_general_names(san)
    dns: list[str] = []
    for value in san.get_values_for_type(x509.DNSName):
        lower = value.lower()
        if not is_dns_name(lower):
            raise ValueError(f"invalid DNS name {_shown(value)}")
        if lower not in dns:
            dns.append(lower)
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for ip in san.get_values_for_type(x509.IPAddress):
        if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and ip not in ips:
            ips.append(ip)
    emails: list[str] = []
    for value in san.get_values_for_type(x509.RFC822Name):
        if not _is_email(value):
            raise ValueError(f"invalid email address {_shown(value)}")
        local, _, domain = value.rpartition("@")
        if (canon := f"{local}@{domain.lower()}") not in emails:
            emails.append(canon)
    uris: list[str] = []
    for value in san.get_values_for_type(x509.UniformResourceIdentifier):
        if value not in uris:
            uris.append(value)
    return SANs(tuple(dns), tuple(ips), tuple(emails), tuple(uris), (*dns, *map(str, ips), *emails, *uris))


def sans_of(cert_or_csr: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    """Return the SAN strings of a certificate or CSR (empty if none)."""
    try:
        ext = cert_or_csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    san = ext.value
    out: list[str] = list(san.get_values_for_type(x509.DNSName))
    out += [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    out += list(san.get_values_for_type(x509.RFC822Name))
    out += list(san.get_values_for_type(x509.UniformResourceIdentifier))
    return out


def common_name_of(name: x509.Name) -> str:
    """Return the first commonName of a Name, or ""."""
    attrs = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def sans_of_names(names: Sequence[x509.GeneralName]) -> SANs:
    """GeneralNames (e.g. what a template put in a certificate) split by type, for a policy check."""
    dns = tuple(n.value for n in names if isinstance(n, x509.DNSName))
    ips = tuple(n.value for n in names if isinstance(n, x509.IPAddress)
                if isinstance(n.value, ipaddress.IPv4Address | ipaddress.IPv6Address))
    emails = tuple(n.value for n in names if isinstance(n, x509.RFC822Name))
    uris = tuple(n.value for n in names if isinstance(n, x509.UniformResourceIdentifier))
    return SANs(dns=dns, ips=ips, emails=emails, uris=uris, all=(*dns, *map(str, ips), *emails, *uris))
