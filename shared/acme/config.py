"""Per-provisioner ACME settings.

The step-ca `ACME` provisioner JSON loads unchanged (`name`, `challenges`,
`requireEAB`, `forceCN`, `termsOfService`, `website`, `caaIdentities`,
`claims`, `options`). Cirrus-only settings live in a nested `cirrus` object,
which step-ca's Go decoder ignores, so the same block works in both:

    "cirrus": {
      "http01Port": 80,            # port the http-01 validator connects to
      "tlsalpn01Port": 443,        # port the tls-alpn-01 validator connects to
      "dnsResolver": "127.0.0.1:8053",  # host:port for dns-01 TXT and A/AAAA lookups
      "allowPrivateAddresses": false,   # RFC 1918/4193, link-local, CGNAT targets
      "allowLoopback": false,      # 127/8 and ::1 targets (tests turn this on)
      "allowWildcard": true,       # wildcard dns identifiers (always dns-01 only)
      "validationTimeout": 10,     # seconds per step (connect, handshake, read, lookup)
      "maxRedirects": 10,          # http-01 redirects followed
      "orderLifetime": "24h",
      "ordersPerMinute": 300,  # newOrder requests per account per minute; 0 turns the limit off
      "accountsPerMinute": 10,  # newAccount creations per client address (IPv6: per /64) per minute; 0: off
      "trustedProxyHops": 0,   # proxies in front that append X-Forwarded-For (Cloud Functions: 1)
      "validationDeadline": 30,  # seconds one validation may take in all (every hop, read and lookup)
      "validationsPerAccount": 4,  # validations of one account running at once; more wait their turn
    }

Ports are configurable so tests (and odd networks) validate unprivileged;
private and loopback targets are refused by default because a validator that
can be pointed inside the VPC is an SSRF vector.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ConfigError

CHALLENGE_TYPES = ("http-01", "dns-01", "tls-alpn-01")


def _duration(value: Any, default: dt.timedelta) -> dt.timedelta:
    if value is None:
        return default
    if isinstance(value, int | float):
        return dt.timedelta(seconds=value)
    text = str(value).strip()
    units = {"h": 3600, "m": 60, "s": 1}
    if text and text[-1] in units:
        try:
            return dt.timedelta(seconds=float(text[:-1]) * units[text[-1]])
        except ValueError:
            pass
    raise ConfigError(f"invalid duration {value!r}")


@dataclass(frozen=True, slots=True)
class ACMEProvisionerConfig:
    """One ACME provisioner, as the ACME server needs it."""

    name: str
    challenges: tuple[str, ...] = CHALLENGE_TYPES
    require_eab: bool = False
    force_cn: bool = False
    terms_of_service: str | None = None
    website: str | None = None
    caa_identities: tuple[str, ...] = ()
    http01_port: int = 80
    tlsalpn01_port: int = 443
    dns_resolver: str | None = None
    allow_private_addresses: bool = False
    allow_loopback: bool = False
    allow_wildcard: bool = True
    validation_timeout: float = 10.0
    max_redirects: int = 10
    order_lifetime: dt.timedelta = dt.timedelta(hours=24)
    orders_per_minute: int = 300
    accounts_per_minute: int = 10
    trusted_proxy_hops: int = 0
    validation_deadline: float = 30.0
    validations_per_account: int = 4
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ACMEProvisionerConfig:
        """Build from a step-ca provisioner block; raise ConfigError if invalid."""
        if str(obj.get("type", "ACME")).upper() != "ACME":
            raise ConfigError("not an ACME provisioner")
        name = obj.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("ACME provisioner needs a name")
        challenges = tuple(obj.get("challenges") or CHALLENGE_TYPES)
        unknown = [c for c in challenges if c not in CHALLENGE_TYPES]
        if unknown:
            raise ConfigError(f"provisioner {name}: unsupported challenges {unknown}")
        extra = obj.get("cirrus") or {}
        if not isinstance(extra, Mapping):
            raise ConfigError(f"provisioner {name}: cirrus must be an object")
        return cls(
            name=name,
            challenges=challenges,
            require_eab=bool(obj.get("requireEAB", False)),
            force_cn=bool(obj.get("forceCN", False)),
            terms_of_service=obj.get("termsOfService") or None,
            website=obj.get("website") or None,
            caa_identities=tuple(obj.get("caaIdentities") or ()),
            http01_port=int(extra.get("http01Port", 80)),
            tlsalpn01_port=int(extra.get("tlsalpn01Port", 443)),
            dns_resolver=extra.get("dnsResolver") or None,
            allow_private_addresses=bool(extra.get("allowPrivateAddresses", False)),
            allow_loopback=bool(extra.get("allowLoopback", False)),
            allow_wildcard=bool(extra.get("allowWildcard", True)),
            validation_timeout=float(extra.get("validationTimeout", 10.0)),
            max_redirects=int(extra.get("maxRedirects", 10)),
            order_lifetime=_duration(extra.get("orderLifetime"), dt.timedelta(hours=24)),
            orders_per_minute=int(extra.get("ordersPerMinute", 300)),
            accounts_per_minute=int(extra.get("accountsPerMinute", 10)),
            trusted_proxy_hops=max(0, int(extra.get("trustedProxyHops", 0))),
            validation_deadline=float(extra.get("validationDeadline", 30.0)),
            validations_per_account=max(1, int(extra.get("validationsPerAccount", 4))),
            raw=dict(obj),
        )
