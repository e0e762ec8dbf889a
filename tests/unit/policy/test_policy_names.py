"""The policy engine over step-ca's documented examples (reference s.2.6, smallstep's policy docs).

Each row: a policy block, a name (with its type), and whether step-ca allows it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from shared.errors import ConfigError
from shared.policy.names import NamePolicy, PolicyViolation

ALLOW_LOCAL = {"x509": {"allow": {"dns": ["*.local"]}}}
DENY_WINS = {"x509": {"allow": {"dns": ["*.example.com"]}, "deny": {"dns": ["bad.example.com"]}}}
CIDRS = {"x509": {"allow": {"ip": ["10.0.0.0/8", "192.168.1.10"]}, "deny": {"ip": ["10.1.0.0/16"]}}}
EMAILS = {"x509": {"allow": {"email": ["@example.com", "root@admin.example.org"]}}}
URIS = {"x509": {"allow": {"uri": ["*.example.com", "spiffe.example.org"]}}}
DENY_ONLY = {"x509": {"deny": {"dns": ["*.internal.example.com"], "ip": ["127.0.0.0/8"]}}}
CN_RULES = {"x509": {"allow": {"cn": ["My Service"], "dns": ["*.example.com"]}}}
WILDCARDS = {"x509": {"allow": {"dns": ["*.example.com"]}, "allowWildcardNames": True}}
IPV6 = {"x509": {"allow": {"ip": ["2001:db8::/32"]}}}

# (policy, kind, name, allowed)
TABLE: list[tuple[dict[str, Any], str, str, bool]] = [
    # `*.local` means exactly one label in front of `local`.
    (ALLOW_LOCAL, "dns", "host.local", True),
    (ALLOW_LOCAL, "dns", "HOST.Local", True),
    (ALLOW_LOCAL, "dns", "a.b.local", False),
    (ALLOW_LOCAL, "dns", "local", False),
    (ALLOW_LOCAL, "dns", "host.localdomain", False),
    # once any allow rule exists, names of other types must be allowed explicitly
    (ALLOW_LOCAL, "ip", "10.0.0.1", False),
    (ALLOW_LOCAL, "email", "a@host.local", False),
    # deny wins over allow
    (DENY_WINS, "dns", "good.example.com", True),
    (DENY_WINS, "dns", "bad.example.com", False),
    (DENY_WINS, "dns", "BAD.example.com", False),
    # CIDRs, single addresses, deny inside an allowed range
    (CIDRS, "ip", "10.2.3.4", True),
    (CIDRS, "ip", "10.1.2.3", False),
    (CIDRS, "ip", "192.168.1.10", True),
    (CIDRS, "ip", "192.168.1.11", False),
    (CIDRS, "ip", "11.0.0.1", False),
    (CIDRS, "ip", "::ffff:10.2.3.4", True),
    (IPV6, "ip", "2001:db8::1", True),
    (IPV6, "ip", "2001:db9::1", False),
    (IPV6, "ip", "10.0.0.1", False),
    # emails: `@domain` is a domain rule; a full address matches exactly
    (EMAILS, "email", "alice@example.com", True),
    (EMAILS, "email", "alice@EXAMPLE.com", True),
    (EMAILS, "email", "alice@sub.example.com", False),
    (EMAILS, "email", "root@admin.example.org", True),
    (EMAILS, "email", "ROOT@admin.example.org", False),
    (EMAILS, "email", "bob@admin.example.org", False),
    (EMAILS, "email", ".a@example.com", False),
    # URIs: a domain rule on the host; IP hosts and empty hosts are refused
    (URIS, "uri", "https://svc.example.com/path", True),
    (URIS, "uri", "spiffe://spiffe.example.org/ns/default/sa/x", True),
    (URIS, "uri", "https://example.com/", False),
    (URIS, "uri", "https://a.b.example.com/", False),
    (URIS, "uri", "https://10.0.0.1/", False),
    (URIS, "uri", "urn:uuid:1234", False),
    # an empty allow list allows everything not denied
    (DENY_ONLY, "dns", "anything.example.net", True),
    (DENY_ONLY, "dns", "db.internal.example.com", False),
    (DENY_ONLY, "ip", "127.0.0.1", False),
    (DENY_ONLY, "ip", "8.8.8.8", True),
    (DENY_ONLY, "email", "x@y.example", True),
    # literal wildcard SANs are refused unless allowWildcardNames
    (ALLOW_LOCAL, "dns", "*.local", False),
    (DENY_WINS, "dns", "*.example.com", False),
    (WILDCARDS, "dns", "*.example.com", True),
    (WILDCARDS, "dns", "*.a.example.com", False),
    (WILDCARDS, "dns", "**.example.com", False),
    (WILDCARDS, "dns", "a.*.example.com", False),
    # common names: `cn` rules first, else the type the CN parses as
    (CN_RULES, "cn", "My Service", True),
    (CN_RULES, "cn", "my service", True),
    (CN_RULES, "cn", "web.example.com", True),
    (CN_RULES, "cn", "Other Service", False),
    (CN_RULES, "cn", "web.example.org", False),
    (ALLOW_LOCAL, "cn", "host.local", True),
    (ALLOW_LOCAL, "cn", "10.0.0.1", False),
    (DENY_ONLY, "cn", "127.0.0.1", False),
    (DENY_ONLY, "cn", "", True),
]


def check(policy: dict[str, Any], kind: str, name: str) -> None:
    engine = NamePolicy.from_json(policy)
    assert engine is not None
    if kind == "cn":
        engine.check(common_name=name)
    elif kind == "dns":
        engine.check(common_name="", dns=[name])
    elif kind == "ip":
        engine.check(common_name="", ips=[ipaddress.ip_address(name)])
    elif kind == "email":
        engine.check(common_name="", emails=[name])
    else:
        engine.check(common_name="", uris=[name])


@pytest.mark.parametrize(("policy", "kind", "name", "allowed"), TABLE)
def test_step_ca_examples(policy: dict[str, Any], kind: str, name: str, allowed: bool) -> None:
    if allowed:
        check(policy, kind, name)
    else:
        with pytest.raises(PolicyViolation) as info:
            check(policy, kind, name)
        assert info.value.status == 403
        assert info.value.name_type == kind


def test_message_names_the_rule_for_a_deny() -> None:
    with pytest.raises(PolicyViolation) as info:
        check(DENY_WINS, "dns", "bad.example.com")
    assert info.value.detail == 'dns "bad.example.com" is excluded by constraint "bad.example.com"'


def test_first_refused_name_of_many_is_reported() -> None:
    engine = NamePolicy.from_json(DENY_WINS)
    assert engine is not None
    with pytest.raises(PolicyViolation) as info:
        engine.check(common_name="ok.example.com", dns=["ok.example.com", "bad.example.com"])
    assert info.value.name == "bad.example.com"


def test_no_rules_means_no_policy() -> None:
    assert NamePolicy.from_json(None) is None
    assert NamePolicy.from_json({"x509": {"allow": {}, "deny": {}}}) is None
    assert NamePolicy.from_json({"ssh": {}}) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"x509": {"allow": {"dns": ["a.*.example.com"]}}},
        {"x509": {"allow": {"dns": ["a..example.com"]}}},
        {"x509": {"allow": {"ip": ["10.0.0.300/8"]}}},
        {"x509": {"allow": {"email": ["*@example.com"]}}},
        {"x509": {"allow": {"dsn": ["example.com"]}}},
        {"x509": {"allow": {"dns": "example.com"}}},
        {"x509": {"allowWildcardNames": "yes"}},
        {"x509": []},
    ],
)
def test_bad_rules_are_refused_at_start(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        NamePolicy.from_json(bad)


def test_rules_with_regex_metacharacters_are_literal() -> None:
    engine = NamePolicy.from_json({"x509": {"allow": {"dns": ["a+b.example.com"]}}})
    assert engine is not None
    engine.check(common_name="", dns=["a+b.example.com"])
    with pytest.raises(PolicyViolation):
        engine.check(common_name="", dns=["aab.example.com"])
