"""dns-01 validation (RFC 8555 s.8.4, ACME-10) through the provisioner's resolver."""

from __future__ import annotations

from shared.acme.challenges import dns01_digest
from shared.acme.challenges.addresses import make_resolver
from shared.acme.challenges.deadline import Deadline
from shared.acme.config import ACMEProvisionerConfig
from shared.acme.identifiers import Identifier
from shared.acme.problems import ACMEProblem


def validate(
    identifier: Identifier,
    token: str,
    key_authorization: str,
    config: ACMEProvisionerConfig,
    deadline: Deadline | None = None,
) -> None:
    """Raise an ACMEProblem unless `_acme-challenge.<name>` has the expected TXT (looked up by `deadline`)."""
    deadline = deadline or Deadline.start(config)
    import dns.exception
    import dns.resolver

    name = f"_acme-challenge.{identifier.base}."
    want = dns01_digest(key_authorization)
    try:
        answer = make_resolver(config, deadline).resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        raise ACMEProblem("unauthorized", f"no TXT record found at {name}") from None
    except dns.exception.DNSException as exc:
        raise ACMEProblem("dns", f"DNS problem looking up TXT for {name}") from exc
    values = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    if want not in values:
        raise ACMEProblem("incorrectResponse", f"TXT record at {name} does not match")
