"""What every SSH operation shares: signing with the right CA key, and recording what was signed.

`/ssh/sign`, `/ssh/renew`, `/ssh/rekey` (and the `addUserPublicKey` certificate) end the same way:
one `Signer.sign` call with the user or host CA key, then one atomic write of the record, its
endpoint, events and token claim (`shared.ssh.records`), then the host index for host
certificates; the certificate is handed out only after that write. `SSHIssuer` is that tail, so
the sign pipeline (`shared.ssh.authority`) and the SSHPOP operations (`shared.ssh.renewal`,
`shared.ssh.revocation`) cannot drift apart.

SSH revocations are recorded under the authority id suffixed `/ssh`, so the X.509 CRLs never
list them; the KRL is built from them instead.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.events.base import EventSink
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef
from shared.provisioners.base import ReplayClaim
from shared.ssh.certificate import HOST_CERT, SSHCertificate, build_and_sign
from shared.ssh.hosts import SSHHostIndex
from shared.ssh.keys import SSHSigners
from shared.ssh.records import SSHRecorder
from shared.ssh.wire import SSHPublicKey
from shared.store.base import DocumentStore, EndpointStore, IssuanceLedger, RevocationStore, TokenLedger

FOREVER = 2**64 - 1


def ssh_revocation_authority(authority_id: str) -> str:
    """The authority id SSH revocations are kept under (never in an X.509 CRL)."""
    return f"{authority_id}/ssh"


class SSHStore(IssuanceLedger, RevocationStore, EndpointStore, TokenLedger, DocumentStore, Protocol):
    """The store roles the SSH authority uses."""


@dataclass(frozen=True, slots=True)
class SSHIssued:
    """An SSH certificate handed to a client, with its record."""

    certificate: SSHCertificate
    record: CertificateRecord
    add_user: SSHCertificate | None = None


class SSHIssuer:
    """Signs SSH certificates with this authority's CA keys and records them."""

    def __init__(self, *, authority_id: str, signers: SSHSigners, store: SSHStore, recorder: SSHRecorder,
                 hosts: SSHHostIndex) -> None:
        self.authority_id = authority_id
        self._signers = signers
        self._store = store
        self.recorder = recorder  # revocations write and publish their own event through it
        self._hosts = hosts

    def sign(
        self,
        key: SSHPublicKey,
        cert_type: int,
        key_id: str,
        principals: tuple[str, ...],
        after: int,
        before: int,
        critical: Mapping[str, str],
        extensions: Mapping[str, str],
    ) -> SSHCertificate:
        """A certificate signed by the host CA key (host certificates) or the user CA key, with a random
        63-bit serial (never 0, which step and OpenSSH read as "no serial")."""
        signer = self._signers.host if cert_type == HOST_CERT else self._signers.user
        return build_and_sign(
            key=key,
            serial=secrets.randbits(63) + 1,
            cert_type=cert_type,
            key_id=key_id,
            principals=principals,
            valid_after=after,
            valid_before=before,
            critical_options=critical,
            extensions=extensions,
            ca=signer,
        )

    def record(
        self,
        cert: SSHCertificate,
        provisioner: ProvisionerRef,
        endpoint: Endpoint,
        now: dt.datetime,
        *,
        operation: str,
        new_endpoint: bool,
        claim: ReplayClaim | None,
        renewed_from: str | None = None,
    ) -> SSHIssued:
        """Store the certificate (claiming the token in the same write), then index a host's principals."""
        record = self.recorder.record(
            cert, provisioner, endpoint, now, operation=operation, new_endpoint=new_endpoint, claim=claim,
            renewed_from=renewed_from,
        )
        if cert.cert_type == HOST_CERT:
            self._hosts.add(cert)
        return SSHIssued(certificate=cert, record=record)

    def own_record(self, serial: str) -> CertificateRecord | None:
        """The record of an SSH certificate this authority issued, or None."""
        record = self._store.get_certificate(serial)
        if record is None or record.authority_id != self.authority_id or record.kind != CertificateKind.SSH:
            return None
        return record


def ssh_issuer(*, authority_id: str, signers: SSHSigners, store: SSHStore, sinks: Sequence[EventSink],
               hosts: SSHHostIndex) -> SSHIssuer:
    """The issuer of one authority (its recorder writes to `store` and publishes to `sinks`)."""
    recorder = SSHRecorder(authority_id=authority_id, ledger=store, sinks=sinks)
    return SSHIssuer(authority_id=authority_id, signers=signers, store=store, recorder=recorder, hosts=hosts)
