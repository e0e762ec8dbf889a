"""Challenge validators: http-01, dns-01, tls-alpn-01.

Each module exposes `validate(identifier, key_authorization, token, config)`
which returns on success and raises an `ACMEProblem` (connection, dns, tls,
incorrectResponse, unauthorized) on failure. Validation runs synchronously
inside the challenge POST, as in step-ca: no background worker is needed on
a stateless function. The provisioner's `validationDeadline` bounds a whole
validation (`deadline.Deadline`), `validationTimeout` each step of it; behind
`cirrus up` validations run after the answer (`shared.acme.validations`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from shared.acme.config import ACMEProvisionerConfig
from shared.acme.identifiers import Identifier
from shared.acme.jws import b64e

Validator = Callable[[Identifier, str, str, ACMEProvisionerConfig], None]  # each ends by its own total deadline


def dns01_digest(key_authorization: str) -> str:
    """base64url(SHA-256(keyAuthorization)), the TXT value dns-01 expects."""
    return b64e(hashlib.sha256(key_authorization.encode("ascii")).digest())


def validator_for(kind: str) -> Validator:
    """The validator of a challenge type (imported lazily to keep cold start small)."""
    if kind == "http-01":
        from shared.acme.challenges import http01

        return http01.validate
    if kind == "dns-01":
        from shared.acme.challenges import dns01

        return dns01.validate
    if kind == "tls-alpn-01":
        from shared.acme.challenges import tlsalpn01

        return tlsalpn01.validate
    raise ValueError(f"unknown challenge type {kind}")
