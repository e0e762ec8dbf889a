"""What the ACME server needs from the issuing authority.

The ACME layer proves control of identifiers; the authority decides what a
certificate looks like (claims, policy, template, endpoint grouping by
subject) and records it before returning it (DESIGN.md s.3). These protocols
are the whole contract between them, narrow on purpose so the ACME server can
be tested against a small real CA.

Errors: implementations raise `shared.errors.Forbidden` for a policy refusal
(shown as `rejectedIdentifier`), `BadRequest` for a CSR it will not sign
(`badCSR`), `AlreadyRevoked` from `Revoker.revoke`, and `Unavailable` when a
backend is down. Anything else becomes a generic `serverInternal`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509

from shared.acme.identifiers import Identifier


@dataclass(frozen=True, slots=True)
class IssuedChain:
    """A certificate as handed to the client: leaf, its chain, and other chains.

    `chain` is the intermediates (not the root) after the leaf; each entry of
    `alternates` is another such chain (e.g. cross-signed), served at
    `/certificate/{id}/{n}` and linked with `rel="alternate"`.
    """

    serial: str
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    alternates: tuple[tuple[x509.Certificate, ...], ...] = ()


class Finalizer(Protocol):
    """The issuing authority, as the ACME server sees it."""

    def check_identifiers(self, identifiers: Sequence[Identifier], *, provisioner: str) -> None:
        """Refuse (raise `Forbidden`) names the provisioner's policy would never sign.

        Called at newOrder so a client learns early (RFC 8555 s.7.4
        rejectedIdentifier), and again implicitly by `issue`.
        """
        ...

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        identifiers: Sequence[Identifier],
        *,
        provisioner: str,
        account_id: str,
        replaces: str | None,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
    ) -> IssuedChain:
        """Sign and durably record a certificate for exactly `identifiers`.

        `replaces` is the decimal serial of the certificate this order renews
        (RFC 9773), for lineage. The CSR was already checked: signature
        valid, names equal to `identifiers`, key acceptable.
        """
        ...


class Revoker(Protocol):
    """Revocation, as the ACME server needs it."""

    def revoke(self, serial: str, *, reason_code: int, provisioner: str, account_id: str | None) -> None:
        """Revoke a certificate by decimal serial; raise `AlreadyRevoked` if it was."""
        ...
