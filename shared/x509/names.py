"""Subject alternative names: classification and syntax checks.

A SAN string is classified as step-ca's `x509util.SplitSANs` does: an IP
address, else an email (contains "@"), else a URI (has a scheme), else a DNS
name. DNS names must be in preferred syntax (X509-06), lower-cased; IDNs must
already be A-labels.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


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
    """True if `name` is a DNS name in preferred syntax (optionally `*.` wildcard)."""
    if not name or len(name) > 253 or name.endswith("."):
        return False
    labels = name.split(".")
    if allow_wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    return all(_LABEL.match(label) for label in labels)


def _is_email(name: str) -> bool:
    local, _, domain = name.rpartition("@")
    return bool(_EMAIL_LOCAL.match(local)) and is_dns_name(domain.lower(), allow_wildcard=False)


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
            parts = urlsplit(name)
            if not parts.scheme or any(c.isspace() for c in name):
                raise ValueError(f"invalid URI {name!r}")
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
