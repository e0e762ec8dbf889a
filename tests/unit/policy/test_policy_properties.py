"""Properties of the DNS rules, over generated names (derandomized: the same cases every run)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.policy.names import NamePolicy, PolicyViolation

LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")


def allowed(policy: NamePolicy, name: str) -> bool:
    try:
        policy.check(common_name="", dns=[name])
    except PolicyViolation:
        return False
    return True


@settings(derandomize=True, max_examples=60, deadline=None)
@given(base=st.lists(LABEL, min_size=1, max_size=3), extra=st.lists(LABEL, min_size=0, max_size=3))
def test_wildcard_rule_matches_exactly_one_more_label(base: list[str], extra: list[str]) -> None:
    domain = ".".join(base)
    policy = NamePolicy.from_json({"x509": {"allow": {"dns": [f"*.{domain}"]}}})
    assert policy is not None
    name = ".".join([*extra, domain])
    assert allowed(policy, name) == (len(extra) == 1)
    assert allowed(policy, name.upper()) == (len(extra) == 1)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(labels=st.lists(LABEL, min_size=2, max_size=4))
def test_deny_beats_any_allow(labels: list[str]) -> None:
    name = ".".join(labels)
    parent = ".".join(labels[1:])
    policy = NamePolicy.from_json({"x509": {"allow": {"dns": [f"*.{parent}", name]}, "deny": {"dns": [name]}}})
    assert policy is not None
    assert not allowed(policy, name)


@pytest.mark.parametrize("rule", ["example.com", "*.example.com"])
def test_exact_and_wildcard_rules_differ(rule: str) -> None:
    policy = NamePolicy.from_json({"x509": {"allow": {"dns": [rule]}}})
    assert policy is not None
    assert allowed(policy, "example.com") == (rule == "example.com")
    assert allowed(policy, "www.example.com") == (rule != "example.com")
