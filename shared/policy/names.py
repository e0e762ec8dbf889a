"""One allow/deny rule set for X.509 names, with step-ca's semantics (reference s.2.6).

The matching is step-ca's `policy` package (itself Go's x509 name-constraint
code): deny beats allow; once any allow rule exists, a name of a type with no
allow rule is refused; a DNS rule `*.example.com` (stored as `.example.com`)
matches exactly one extra label; IP rules are CIDRs (a bare address is a
/32 or /128) compared with `ipaddress`; an email rule with `@` is a mailbox,
otherwise a domain rule on the mailbox's domain; a URI rule is a domain rule
on the URI's host (hosts that are IP literals are refused); literal wildcard
SANs are refused unless `allowWildcardNames`; the common name is checked
against `cn` rules, and if no `cn` rule allows it, against the rules of the
type it parses as. Matching is label-by-label string comparison: no regular
expression is ever built from a rule. Hand-written because no maintained
Python library implements these (non-RFC 5280) semantics.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.errors import ConfigError, Forbidden

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
RULE_KEYS = ("cn", "dns", "ip", "email", "uri")


class PolicyViolation(Forbidden):
    """A name the policy does not allow (403 on the step API, rejectedIdentifier on ACME)."""

    def __init__(self, name_type: str, name: str, detail: str) -> None:
        self.name_type = name_type
        self.name = name
        super().__init__(detail)


def _labels(domain: str) -> list[str] | None:
    """Reverse labels of a domain, or None when a label is empty or has a non-printable byte."""
    if not domain:
        return None
    labels = domain.split(".")[::-1]
    for label in labels:
        if not label or any(not 33 <= ord(c) <= 126 for c in label):
            return None
    return labels


def _to_ascii(domain: str) -> str | None:
    """IDNA (2003, as Python's codec) form of a domain, lower-cased; None if it cannot convert."""
    if domain.isascii():
        return domain.lower()
    try:
        return domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def _domain_rule(raw: str, what: str) -> str:
    """Normalise a DNS/URI/email-domain rule: lower case, ASCII, `*.x` stored as `.x`."""
    rule = raw.strip().lower()
    if rule.startswith("*."):
        rule = rule[1:]
    body = rule[1:] if rule.startswith(".") else rule
    if not body or "*" in body or ".." in body or _labels(body) is None:
        raise ConfigError(f"policy: cannot parse {what} rule {raw!r}")
    ascii_body = _to_ascii(body)
    if ascii_body is None:
        raise ConfigError(f"policy: cannot parse {what} rule {raw!r}")
    return ("." if rule.startswith(".") else "") + ascii_body


def _ip_rule(raw: str) -> IPNetwork:
    try:
        if "/" in raw:
            return ipaddress.ip_network(raw.strip(), strict=False)
        return ipaddress.ip_network(ipaddress.ip_address(raw.strip()))
    except ValueError as exc:
        raise ConfigError(f"policy: cannot parse ip rule {raw!r} as IP nor CIDR") from exc


@dataclass(frozen=True, slots=True)
class _Mailbox:
    local: str
    domain: str


def _mailbox(value: str) -> _Mailbox | None:
    """Split an address at its last `@`; the local part must be non-empty and dot-clean."""
    local, at, domain = value.rpartition("@")
    if not at or not local or _labels(domain) is None:
        return None
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        local = local[1:-1]
    elif local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    return _Mailbox(local, domain)


def _email_rule(raw: str) -> str:
    rule = raw.strip()
    if "*" in rule:
        raise ConfigError(f"policy: email rule {raw!r} cannot contain an asterisk")
    if rule.startswith("@"):
        return _domain_rule(rule[1:], "email")
    if "@" in rule:
        box = _mailbox(rule)
        domain = _to_ascii(box.domain) if box is not None else None
        if box is None or domain is None:
            raise ConfigError(f"policy: cannot parse email rule {raw!r}")
        return f"{box.local}@{domain}"
    return _domain_rule(rule, "email")


@dataclass(frozen=True, slots=True)
class _Rules:
    cn: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    ip: tuple[IPNetwork, ...] = ()
    email: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.cn) + len(self.dns) + len(self.ip) + len(self.email) + len(self.uri)

    @classmethod
    def parse(cls, raw: Any, where: str) -> _Rules:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"policy: {where} must be an object")
        unknown = set(raw) - set(RULE_KEYS)
        if unknown:
            raise ConfigError(f"policy: {where} has unknown keys {sorted(unknown)}")

        def strings(key: str) -> list[str]:
            value = raw.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"policy: {where}.{key} must be a list of non-empty strings")
            return value

        return cls(
            cn=tuple(strings("cn")),
            dns=tuple(_domain_rule(d, "dns") for d in strings("dns")),
            ip=tuple(_ip_rule(i) for i in strings("ip")),
            email=tuple(_email_rule(e) for e in strings("email")),
            uri=tuple(_domain_rule(u, "uri") for u in strings("uri")),
        )


class NamePolicy:
    """One `x509` policy block: `allow`, `deny`, `allowWildcardNames`."""

    def __init__(self, allow: _Rules, deny: _Rules, *, allow_wildcard_names: bool = False) -> None:
        self._allow = allow
        self._deny = deny
        self._wildcards = allow_wildcard_names

    @classmethod
    def from_json(cls, raw: Any, where: str = "policy") -> NamePolicy | None:
        """Parse a `policy` block (its `x509` part); None when it has no rules.

        Raises:
            ConfigError: unknown keys or unparsable rules (found at start, never per request).
        """
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where} must be an object")
        x509 = raw.get("x509")
        if x509 is None:
            return None
        if not isinstance(x509, Mapping):
            raise ConfigError(f"{where}.x509 must be an object")
        wildcards = x509.get("allowWildcardNames", False)
        if not isinstance(wildcards, bool):
            raise ConfigError(f"{where}.x509.allowWildcardNames must be a boolean")
        policy = cls(
            _Rules.parse(x509.get("allow"), f"{where}.x509.allow"),
            _Rules.parse(x509.get("deny"), f"{where}.x509.deny"),
            allow_wildcard_names=wildcards,
        )
        return policy if policy._allow.count + policy._deny.count else None

    # ------------------------------------------------------------ checking
    def check(
        self,
        *,
        common_name: str,
        dns: Iterable[str] = (),
        ips: Iterable[IPAddr] = (),
        emails: Iterable[str] = (),
        uris: Iterable[str] = (),
    ) -> None:
        """Refuse the first name the policy does not allow.

        Raises:
            PolicyViolation: a name is denied, or not allowed while allow rules exist.
        """
        self._check_names(list(dns), list(ips), list(emails), list(uris))
        self._check_common_name(common_name)

    def _check_common_name(self, cn: str) -> None:
        if not cn:
            return
        if self._allow.cn or self._deny.cn:
            try:
                self._constrain("cn", cn, cn, lambda c, rule: c.lower() == rule.lower(), self._allow.cn, self._deny.cn)
                return
            except PolicyViolation:
                pass
        # Not allowed as a CN: check it as the name type it parses as.
        literal = cn.strip("[]")
        try:
            ip: IPAddr | None = ipaddress.ip_address(literal)
        except ValueError:
            ip = None
        try:
            if ip is not None:
                self._check_names([], [ip], [], [])
            elif "@" in cn and "://" not in cn:
                self._check_names([], [], [cn], [])
            elif "://" in cn:
                self._check_names([], [], [], [cn])
            else:
                self._check_names([cn], [], [], [])
        except PolicyViolation as exc:
            raise PolicyViolation("cn", cn, exc.detail.replace(f"{exc.name_type} ", "cn ", 1)) from None

    def _check_names(
        self, dns: Sequence[str], ips: Sequence[IPAddr], emails: Sequence[str], uris: Sequence[str]
    ) -> None:
        allow, deny = self._allow, self._deny
        any_allow = allow.count > 0
        for name in dns:
            if any_allow and not allow.dns:
                raise PolicyViolation("dns", name, f'dns "{name}" is not explicitly permitted by any constraint')
            parsed = self._parse_dns(name)
            self._constrain("dns", name, parsed, self._match_domain, allow.dns, deny.dns)
        for ip in ips:
            if any_allow and not allow.ip:
                raise PolicyViolation("ip", str(ip), f'ip "{ip}" is not explicitly permitted by any constraint')
            self._constrain("ip", str(ip), ip, _match_ip, allow.ip, deny.ip)
        for email in emails:
            if any_allow and not allow.email:
                raise PolicyViolation("email", email, f'email "{email}" is not explicitly permitted by any constraint')
            box = _mailbox(email)
            domain = _to_ascii(box.domain) if box is not None else None
            if box is None or domain is None:
                raise PolicyViolation("email", email, f'invalid rfc822Name "{email}"')
            self._constrain("email", email, _Mailbox(box.local, domain), self._match_email, allow.email, deny.email)
        for uri in uris:
            if any_allow and not allow.uri:
                raise PolicyViolation("uri", uri, f'uri "{uri}" is not explicitly permitted by any constraint')
            self._constrain("uri", uri, self._uri_host(uri), self._match_domain, allow.uri, deny.uri)

    @staticmethod
    def _constrain(kind: str, name: str, parsed: Any, match: Any, allow: Sequence[Any], deny: Sequence[Any]) -> None:
        for rule in deny:
            if match(parsed, rule):
                raise PolicyViolation(kind, name, f'{kind} "{name}" is excluded by constraint "{_show(rule)}"')
        if allow and not any(match(parsed, rule) for rule in allow):
            raise PolicyViolation(kind, name, f'{kind} "{name}" is not permitted by any constraint')

    @staticmethod
    def _parse_dns(name: str) -> str:
        wildcard = name.startswith("*.")
        body = _to_ascii(name[1:] if wildcard else name)
        if body is None:
            raise PolicyViolation("dns", name, f'dns "{name}" cannot be converted to ASCII')
        parsed = ("*" + body) if wildcard else body
        if _labels(parsed) is None:
            raise PolicyViolation("dns", name, f'cannot parse dns "{name}"')
        return parsed

    @staticmethod
    def _uri_host(uri: str) -> str:
        try:
            host = urlsplit(uri).hostname or ""
        except ValueError:
            host = ""
        if not host:
            raise PolicyViolation("uri", uri, f'URI with empty host ("{uri}") cannot be matched against constraints')
        if "*" in host:
            raise PolicyViolation("uri", uri, f'URI host "{uri}" cannot contain asterisk')
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return host.lower()
        raise PolicyViolation("uri", uri, f'URI with IP "{uri}" cannot be matched against constraints')

    def _match_domain(self, domain: str, rule: str) -> bool:
        if domain.startswith(".") or (domain.startswith("*") and not domain.startswith("*.")):
            return False
        if domain.startswith("*.") and not self._wildcards:
            return False
        if domain.rfind("*") > 0:
            return False
        domain_labels = _labels(domain)
        if domain_labels is None:
            return False
        subdomain = rule.startswith(".")
        rule_labels = _labels(rule[1:] if subdomain else rule)
        if rule_labels is None:
            return False
        if len(domain_labels) != len(rule_labels) + (1 if subdomain else 0):
            return False
        return all(r == d.lower() for r, d in zip(rule_labels, domain_labels, strict=False))

    def _match_email(self, box: _Mailbox, rule: str) -> bool:
        if "@" in rule:
            local, _, domain = rule.rpartition("@")
            return box.local == local and box.domain.lower() == domain
        return self._match_domain(box.domain, rule)


def _match_ip(ip: IPAddr, rule: IPNetwork) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None and rule.version == 4:
        ip = ip.ipv4_mapped
    return ip.version == rule.version and ip in rule


def _show(rule: Any) -> str:
    return str(rule)
