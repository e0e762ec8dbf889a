"""Which policies apply to an issuance: the provisioner's, then the authority's.

step-ca evaluates the provisioner policy and the authority policy for every
X.509 sign (and ACME finalize); both must allow every name. Renewal and rekey
do not re-check policy (step-ca's `RenewContext` leaves it as a TODO and checks
only the CA's name constraints), so neither does Cirrus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from shared.policy.names import NamePolicy
from shared.x509.names import SANs


class _Listed(Protocol):
    @property
    def ref(self) -> Any: ...

    def public_json(self) -> dict[str, Any]: ...


class IssuancePolicies:
    """The authority's policy and each provisioner's, parsed once at start."""

    def __init__(self, authority: NamePolicy | None, by_provisioner: Mapping[str, NamePolicy]) -> None:
        self._authority = authority
        self._by_provisioner = dict(by_provisioner)

    @classmethod
    def build(cls, authority_policy: Any, provisioners: Iterable[_Listed]) -> IssuancePolicies:
        """From `authority.policy` and each provisioner block's `policy`.

        Raises:
            ConfigError: a policy block that does not parse.
        """
        by: dict[str, NamePolicy] = {}
        for p in provisioners:
            parsed = NamePolicy.from_json(p.public_json().get("policy"), f"provisioner {p.ref.name!r}: policy")
            if parsed is not None:
                by[p.ref.id] = parsed
        return cls(NamePolicy.from_json(authority_policy, "authority.policy"), by)

    def applies(self, provisioner_id: str) -> bool:
        """Whether any policy holds this provisioner's names (callers skip gathering them when none does)."""
        return self._authority is not None or provisioner_id in self._by_provisioner

    def check(self, provisioner_id: str, common_name: str, sans: SANs) -> None:
        """Refuse names outside the provisioner's or the authority's policy.

        Raises:
            PolicyViolation: the first refused name (403).
        """
        for policy in (self._by_provisioner.get(provisioner_id), self._authority):
            if policy is not None:
                policy.check(common_name=common_name, dns=sans.dns, ips=sans.ips, emails=sans.emails, uris=sans.uris)
