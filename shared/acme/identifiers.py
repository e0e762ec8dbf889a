"""ACME identifiers: `dns` (RFC 8555) and `ip` (RFC 8738), checked and normalised.

Names are lower-cased and IP addresses put in canonical text form before
anything compares them, so `Example.COM` in an order and `example.com` in a
CSR match, and `::0:1` and `::1` are one identifier.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from shared.acme.problems import ACMEProblem

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """One `{type, value}` pair; `value` keeps the `*.` of a wildcard."""

    type: str
    value: str

    @property
    def wildcard(self) -> bool:
        """A `*.` dns name."""
        return self.type == "dns" and self.value.startswith("*.")

    @property
    def base(self) -> str:
        """The name without its wildcard prefix (what authorizations carry)."""
        return self.value[2:] if self.wildcard else self.value

    def to_json(self) -> dict[str, str]:
        """Wire form."""
        return {"type": self.type, "value": self.value}


def check_dns_name(name: str, *, allow_wildcard: bool) -> str:
    """Return the normalised name or raise rejectedIdentifier."""
    value = name.strip().lower().rstrip(".") if name else ""
    body = value[2:] if value.startswith("*.") else value
    if value.startswith("*.") and not allow_wildcard:
        raise ACMEProblem("rejectedIdentifier", f"wildcard names are not allowed: {name[:255]}")
    labels = body.split(".")
    if (
        not body
        or len(body) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ACMEProblem("rejectedIdentifier", f"invalid DNS name {name[:255]!r}")
    return value


def parse_identifier(obj: Any, *, allow_wildcard: bool = True) -> Identifier:
    """Validate one identifier object from a client."""
    if not isinstance(obj, dict) or not isinstance(obj.get("value"), str):
        raise ACMEProblem("malformed", "identifier must be an object with type and value")
    kind, value = obj.get("type"), obj["value"]
    if kind == "dns":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            pass
        else:
            raise ACMEProblem("rejectedIdentifier", "IP addresses must use the ip identifier type")
        return Identifier("dns", check_dns_name(value, allow_wildcard=allow_wildcard))
    if kind == "ip":
        try:
            return Identifier("ip", str(ipaddress.ip_address(value)))
        except ValueError as exc:
            raise ACMEProblem("malformed", f"invalid IP address {value[:64]!r}") from exc
    raise ACMEProblem("unsupportedIdentifier", f"identifier type {str(kind)[:32]!r} is not supported")
