"""Resolving validation targets and refusing ones inside the fence.

A validator that connects wherever a client's DNS points is an SSRF probe
into the CA's network, so every address is checked before connecting:
loopback, private (RFC 1918, ULA, CGNAT), link-local, multicast, reserved and
unspecified addresses are refused unless the provisioner allows them.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from shared.acme.challenges.deadline import Deadline
from shared.acme.config import ACMEProvisionerConfig
from shared.acme.problems import ACMEProblem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use translation prefix


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and leads to, if any.

    IPv4-mapped (::ffff:0:0/96), 6to4 (2002::/16, RFC 3056), Teredo
    (2001::/32, RFC 4380: the client's address, obfuscated) and NAT64
    (64:ff9b::/96, RFC 6052; 64:ff9b:1::/48, RFC 8215, with the /96 layout)
    reach the IPv4 host they embed, so that host is what the fence checks.
    """
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(ip: IPAddress, config: ACMEProvisionerConfig) -> bool:
    """Whether the validator may connect to `ip` (an IPv6 address embedding IPv4: both must pass)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            if not _allowed(inner, config):
                return False
            if ip.ipv4_mapped is not None:
                return True  # the mapped form is the IPv4 address itself
    return _allowed(ip, config)


def _allowed(ip: IPAddress, config: ACMEProvisionerConfig) -> bool:
    if ip.is_loopback:
        return config.allow_loopback
    if ip.is_unspecified or ip.is_multicast:
        return False
    if ip.is_private or ip.is_link_local or ip.is_reserved or not ip.is_global:
        return config.allow_private_addresses
    return True


def make_resolver(config: ACMEProvisionerConfig, deadline: Deadline | None = None) -> Any:
    """A dnspython resolver using the provisioner's `dnsResolver`, or the system's; each lookup ends by `deadline`."""
    import dns.resolver

    if config.dns_resolver:
        resolver = dns.resolver.Resolver(configure=False)
        host, _, port = config.dns_resolver.rpartition(":")
        if not host:
            host, port = port, "53"
        resolver.nameservers = [host.strip("[]")]
        resolver.port = int(port)
    else:
        resolver = dns.resolver.Resolver()
    step = deadline.timeout() if deadline is not None else config.validation_timeout
    resolver.lifetime = step  # one resolve() in all, retries and CNAME chasing included
    resolver.timeout = step
    return resolver


def resolve(host: str, config: ACMEProvisionerConfig, deadline: Deadline | None = None) -> list[IPAddress]:
    """Addresses of `host` (an IP literal resolves to itself), IPv4 first.

    With a configured resolver, AAAA is asked only when no usable A record
    exists: validation uses the first allowed address, so the second query
    would be a wasted round trip on every challenge.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    addrs: list[IPAddress] = []
    if config.dns_resolver:
        import dns.exception
        import dns.resolver

        for rtype in ("A", "AAAA"):
            if any(address_allowed(a, config) for a in addrs):
                break  # an IPv4 address we may use: skip the AAAA round trip
            resolver = make_resolver(config, deadline)
            try:
                answer = resolver.resolve(host, rtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
                continue
            except dns.exception.DNSException as exc:
                raise ACMEProblem("dns", f"DNS problem looking up {rtype} for {host}") from exc
            addrs.extend(ipaddress.ip_address(r.address) for r in answer)
    else:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            raise ACMEProblem("dns", f"DNS problem: could not resolve {host}") from exc
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if ip not in addrs:
                addrs.append(ip)
    if not addrs:
        raise ACMEProblem("dns", f"DNS problem: no addresses found for {host}")
    return sorted(addrs, key=lambda a: a.version)


def pick_address(host: str, config: ACMEProvisionerConfig, deadline: Deadline | None = None) -> IPAddress:
    """The first resolved address the validator may use, else a connection problem."""
    for ip in resolve(host, config, deadline):
        if address_allowed(ip, config):
            return ip
    raise ACMEProblem("connection", f"{host} resolves only to addresses that may not be validated")
