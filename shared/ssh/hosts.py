"""The host index behind `/ssh/check-host` and `/ssh/hosts`.

step-ca keeps an `ssh_host_principals` table; Cirrus keeps one small document
per (authority, lower-cased principal) in the store's document collection
`ssh_hosts`, holding the latest expiry among that principal's host
certificates. It is a lookup aid written after the certificate's record:
a failure to write it is logged and never undoes an issuance.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from shared.clock import Clock
from shared.ssh.certificate import SSHCertificate
from shared.store.base import DocumentStore

log = logging.getLogger("cirrus.ssh")

HOSTS_COLLECTION = "ssh_hosts"


class SSHHostIndex:
    """Principals of an authority's unexpired host certificates."""

    def __init__(self, *, authority_id: str, documents: DocumentStore, clock: Clock) -> None:
        self._authority_id = authority_id
        self._documents = documents
        self._clock = clock

    def _doc_id(self, principal: str) -> str:
        return hashlib.sha256(f"{self._authority_id}\n{principal.lower()}".encode()).hexdigest()

    def add(self, cert: SSHCertificate) -> None:
        """Remember a host certificate's principals (best effort; keeps the latest expiry)."""
        for principal in cert.principals:
            doc_id = self._doc_id(principal)
            data: dict[str, Any] = {
                "authorityId": self._authority_id,
                "hostname": principal.lower(),
                "notAfter": cert.valid_before,
                "serial": str(cert.serial),
            }
            try:
                for _ in range(3):
                    if self._documents.create_document(HOSTS_COLLECTION, doc_id, data):
                        break
                    found = self._documents.get_document(HOSTS_COLLECTION, doc_id)
                    if found is None:
                        continue
                    current, version = found
                    if int(current.get("notAfter", 0)) >= cert.valid_before:
                        break
                    if self._documents.update_document(HOSTS_COLLECTION, doc_id, data, expected_version=version):
                        break
            except Exception:
                log.warning("could not index SSH host principal; check-host may miss it", exc_info=True)

    def exists(self, principal: str) -> bool:
        """Whether an unexpired host certificate names `principal` (case-insensitive)."""
        found = self._documents.get_document(HOSTS_COLLECTION, self._doc_id(principal))
        if found is None:
            return False
        not_after = found[0].get("notAfter")
        return isinstance(not_after, int) and not_after > self._now()

    def hosts(self) -> list[dict[str, Any]]:
        """`GET /ssh/hosts`: step-ca's host objects for unexpired host certificates."""
        now = self._now()
        docs = self._documents.find_documents(HOSTS_COLLECTION, "authorityId", self._authority_id, limit=1000)
        names = sorted(
            {str(d.get("hostname")) for _, d, _ in docs if isinstance(d.get("notAfter"), int) and d["notAfter"] > now}
        )
        return [{"hid": "", "host_tags": [], "hostname": n} for n in names]

    def _now(self) -> int:
        return int(self._clock.now().astimezone(dt.UTC).timestamp())
