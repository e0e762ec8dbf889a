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

import re
from collections.abc import Iterable, Sequence

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
# https://HOST[:PORT]PATH[#FRAGMENT]: a bracketed IPv6 literal or a registered name / IPv4
# (RFC 3986 unreserved and sub-delims, no percent-escapes), a port of 1-5 ASCII digits,
# a path up to the first `?` or `#` (a query then fails the full match), any fragment.
_AUDIENCE = re.compile(
    r"[hH][tT][tT][pP][sS]://"
    r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._~!$&'()*+,;=-]+))"
    r"(?::([0-9]{1,5}))?"
    r"(/[^?#]*)"
    r"(?:(#)(.*))?",
    re.ASCII | re.DOTALL,
)


def split_audience(aud: str) -> tuple[str, str, str | None] | None:
    """(lowercased host without brackets, path, fragment or None) of an `https://` audience.

    None for anything that is not exactly `https://HOST[:PORT]PATH[#FRAGMENT]` with
    PATH starting with `/`, no userinfo, no query, and a port in 1..65535.
    """
    if len(aud) > 2048:
        return None
    m = _AUDIENCE.fullmatch(aud)
    if m is None:
        return None
    v6, name, port, path, hash_, fragment = m.groups()
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    host = v6 if v6 is not None else name
    return host.lower(), path, (fragment if hash_ else None)


class Audiences:
    """The audiences the CA accepts, per operation."""

    def __init__(self, hosts: Iterable[str], *, prefixes: Iterable[str] = ("",)) -> None:
        """`prefixes`: the mounts the operations are served under (`""` and `"/teams"` for an
        authority reached both by provisioner at the root and at its own `/teams/` prefix)."""
        self._hosts = frozenset(h.strip().strip("[]").lower() for h in hosts if h and h.strip("[] "))
        mounts = tuple(prefixes)
        self._paths = {
            op: frozenset(f"{m}{p}" for m in mounts for path in paths for p in (f"/1.0/{path}", f"/{path}"))
            for op, paths in OPERATION_PATHS.items()
        }

    @property
    def hosts(self) -> frozenset[str]:
        """The CA's names (lowercased, IPv6 without brackets)."""
        return self._hosts

    def matches(
        self,
        audiences: Sequence[str],
        operation: str,
        *,
        fragment: str | None = None,
        fragment_required: bool = False,
    ) -> bool:
        """True if one `aud` is an audience of `operation` at one of the CA's names.

        `fragment` is the caller's own token id (`jwk/<name>`, `x5c/<name>`); an audience
        may carry that fragment or none (none never, with `fragment_required`), never another.
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
            if frag is None:
                if fragment_required:
                    continue
            elif fragment is None or frag != fragment:
                continue
            if host in self._hosts and path in paths:
                return True
        return False
