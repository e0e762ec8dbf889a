"""Token audiences compared as step-ca compares them, and no more leniently.

step-ca accepts, per operation, `https://H/1.0/<op>` and `https://H/<op>` for every CA
name H (`dnsNames`, here also the external URL's host), equal as strings or after
dropping the port (reference s.2.1), plus the legacy `step-certificate-authority` for
sign and revoke. This module reads an `aud` as exactly

    https://HOST[:PORT]PATH[#FRAGMENT]

and refuses everything else: userinfo (`user:pw@`), a query, a port that is not 1-5
ASCII digits in 1..65535 (`HOST:9443.evil.test` is a different host, not a port), a
fragment other than the caller's own (`#<type>/<name>` for provisioners whose token id
travels there), a path other than the operation's. It is hand-written rather than
`urllib.parse.urlsplit`, which accepts all of those and raises on `[` (issue 12, item 2).

New provisioner types call `Audiences.matches` with their own fragment.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.decimal_text import parse_decimal

LEGACY_AUDIENCE = "step-certificate-authority"

OPERATION_PATHS: dict[str, tuple[str, ...]] = {
    "sign": ("sign", "ssh/sign"),
    "revoke": ("revoke",),
    "renew": ("renew",),
    "ssh/sign": ("ssh/sign", "sign"),
    "ssh/revoke": ("ssh/revoke",),
    "ssh/renew": ("ssh/renew",),
    "ssh/rekey": ("ssh/rekey",),
}
_LEGACY_OPERATIONS = frozenset(("sign", "revoke", "ssh/sign"))
# Characters no host or port in an audience may contain (Go's url.Parse refuses most of them too).
_BAD_AUTHORITY = frozenset("@%\\ \t\r\n/?#")


def split_audience(aud: str) -> tuple[str, str, str | None] | None:
    """(lowercased host without brackets, path, fragment or None) of an `https://` audience.

    None for anything that is not exactly `https://HOST[:PORT]PATH[#FRAGMENT]` with
    PATH starting with `/` and no query.
    """
    if len(aud) > 2048 or aud[:8].lower() != "https://":
        return None
    rest, hash_, fragment = aud[8:].partition("#")
    if "?" in rest:
        return None
    slash = rest.find("/")
    if slash <= 0:
        return None
    authority, path = rest[:slash], rest[slash:]
    if any(c in _BAD_AUTHORITY or ord(c) < 0x21 or ord(c) > 0x7E for c in authority):
        return None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        host, after = authority[1:end], authority[end + 1 :]
        if not host or "[" in host or "]" in after:
            return None
    else:
        host, colon, port_text = authority.partition(":")
        after = colon + port_text
        if not host or "[" in host or "]" in host:
            return None
    if after:
        if after[0] != ":":
            return None
        try:
            port = parse_decimal(after[1:], max_digits=5)
        except ValueError:
            return None
        if not 1 <= port <= 65535:
            return None
    return host.lower(), path, (fragment if hash_ else None)


class Audiences:
    """The audiences the CA accepts, per operation."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self._hosts = frozenset(h.strip().strip("[]").lower() for h in hosts if h and h.strip("[] "))
        self._paths = {
            op: frozenset(p for path in paths for p in (f"/1.0/{path}", f"/{path}"))
            for op, paths in OPERATION_PATHS.items()
        }

    @property
    def hosts(self) -> frozenset[str]:
        """The CA's names (lowercased, IPv6 without brackets)."""
        return self._hosts

    def matches(self, audiences: list[str], operation: str, *, fragment: str | None = None) -> bool:
        """True if one `aud` is an audience of `operation` at one of the CA's names.

        `fragment` is the caller's own token id (`jwk/<name>`); an audience may carry
        that fragment or none, never another.
        """
        paths = self._paths[operation]
        for aud in audiences:
            if aud == LEGACY_AUDIENCE:
                if operation in _LEGACY_OPERATIONS:
                    return True
                continue
            parts = split_audience(aud)
            if parts is None:
                continue
            host, path, frag = parts
            if frag is not None and (fragment is None or frag != fragment):
                continue
            if host in self._hosts and path in paths:
                return True
        return False
