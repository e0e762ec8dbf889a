"""ACME problem documents (RFC 8555 s.6.7, RFC 7807).

Every failure a client can cause is raised as an `ACMEProblem` and rendered as
`application/problem+json`; the server turns anything else into a generic
`serverInternal` so internals never leak. Keeping the RFC's type names in one
table (as certbot's `acme.messages.ERROR_CODES` does) makes a typo a
`KeyError` in tests instead of a silently unknown problem type on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import CAError

PREFIX = "urn:ietf:params:acme:error:"

#: RFC 8555 s.6.7 problem types (plus RFC 9773's alreadyReplaced) -> default HTTP status.
TYPES: Mapping[str, int] = {
    "accountDoesNotExist": 400,
    "alreadyRevoked": 400,
    "alreadyReplaced": 409,
    "badCSR": 400,
    "badNonce": 400,
    "badPublicKey": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "caa": 403,
    "compound": 403,
    "connection": 400,
    "dns": 400,
    "externalAccountRequired": 401,
    "incorrectResponse": 403,
    "invalidContact": 400,
    "malformed": 400,
    "orderNotReady": 403,
    "rateLimited": 429,
    "rejectedIdentifier": 400,
    "serverInternal": 500,
    "tls": 400,
    "unauthorized": 403,
    "unsupportedContact": 400,
    "unsupportedIdentifier": 400,
    "userActionRequired": 403,
}


class ACMEProblem(CAError):
    """A problem document the client is meant to see.

    `extra` carries type-specific members (e.g. `algorithms` for
    badSignatureAlgorithm); `headers` carries response headers that belong to
    the problem (Retry-After, Location on a key conflict).
    """

    def __init__(
        self,
        kind: str,
        detail: str,
        *,
        status: int | None = None,
        subproblems: Sequence[ACMEProblem] = (),
        identifier: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if kind not in TYPES:
            raise ValueError(f"unknown ACME problem type {kind!r}")
        self.kind = kind
        self.status = status if status is not None else TYPES[kind]
        self.subproblems = tuple(subproblems)
        self.identifier = dict(identifier) if identifier else None
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        super().__init__(detail)

    @property
    def type(self) -> str:
        """The full URN."""
        return PREFIX + self.kind

    def to_json(self) -> dict[str, Any]:
        """The problem document body (also used inside orders and challenges)."""
        doc: dict[str, Any] = {"type": self.type, "detail": self.detail, "status": self.status}
        if self.identifier:
            doc["identifier"] = self.identifier
        if self.subproblems:
            doc["subproblems"] = [p.to_json() for p in self.subproblems]
        doc.update(self.extra)
        return doc


def from_ca_error(err: CAError) -> ACMEProblem:
    """Map a non-ACME `CAError` (from the authority or a store) to a problem.

    The authority speaks `Forbidden` for policy refusals and `BadRequest` for
    bad CSRs; ACME clients understand rejectedIdentifier and badCSR.
    """
    if isinstance(err, ACMEProblem):
        return err
    if err.status == 403:
        return ACMEProblem("rejectedIdentifier", err.detail)
    if err.status in (400, 422):
        return ACMEProblem("badCSR", err.detail)
    if err.status == 401:
        return ACMEProblem("unauthorized", err.detail)
    if err.status == 409:
        return ACMEProblem("malformed", err.detail, status=409)
    if err.status == 503:
        return ACMEProblem("serverInternal", err.detail, status=503, headers={"Retry-After": "5"})
    return ACMEProblem("serverInternal", "The server experienced an internal error")
