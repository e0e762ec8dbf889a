"""What an issuance hands back, and the store roles the issuing pipeline uses."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.inventory.base import InventoryReader
from shared.model import CertificateRecord
from shared.store.base import EndpointStore, IssuanceLedger, RevocationReader


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate handed to a client, with the chain to send (root excluded)."""

    certificate: x509.Certificate
    chain: Sequence[x509.Certificate]
    record: CertificateRecord
    chain_pem: tuple[str, ...] | None = None  # `chain` as PEM, encoded once per authority

    def pem_chain(self) -> list[str]:
        """Leaf first, then intermediates, as PEM strings.

        The leaf's PEM is made from the record's DER (the standard library's
        `DER_cert_to_PEM_cert`, the same text): `public_bytes` re-encodes the whole
        certificate from its parsed form on every call, and the record needed the DER.
        """
        leaf = ssl.DER_cert_to_PEM_cert(self.record.der)
        if self.chain_pem is not None:
            return [leaf, *self.chain_pem]
        return [leaf, *(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.chain)]


@dataclass(frozen=True, slots=True)
class AuthorityStores:
    """The store roles the issuing pipeline uses."""

    issuance: IssuanceLedger
    revocations: RevocationReader
    endpoints: EndpointStore
    inventories: InventoryReader | None = None  # provisioners' `options.inventory` (shared.inventory.gate)


