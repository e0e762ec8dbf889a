"""A real root -> intermediate -> leaf chain for validation-authority tests.

Built with cryptography and signed through `SoftSigner` (the production
softkms signer), with the CDP and OCSP URLs the certificate profile would put
in leaves (from `shared.validation.partition`).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.blobs.local import LocalBlobStore
from shared.clock import FixedClock
from shared.keys.softkms import SoftSigner
from shared.model import CertificateKind, CertificateRecord, ProvisionerRef, Revocation
from shared.store.memory import MemoryStore
from shared.validation.ocsp import OCSPAuthority, OCSPResponder
from shared.validation.ocsp_http import OCSPEndpoint
from shared.validation.partition import crl_url, shard_for_serial
from shared.validation.published import PublishedCRLs
from shared.validation.publisher import CRLAuthority, CRLPublisher, CRLSchedule
from shared.validation.serial_index import StoreSerials

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
BASE_URL = "http://127.0.0.1:8080"


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cirrus Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    now: dt.datetime,
    path_len: int | None,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(secrets.randbits(127) | 1)
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


@dataclass
class Chain:
    """Root, intermediate and helpers to issue leaves under the intermediate."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    authority_id: str = "intermediate"
    root_id: str = "root"
    shards: int = 0
    base_url: str = BASE_URL
    leaves: dict[int, x509.Certificate] = field(default_factory=dict)

    @property
    def ca_signer(self) -> SoftSigner:
        return SoftSigner(self.ca_key)

    @property
    def root_signer(self) -> SoftSigner:
        return SoftSigner(self.root_key)

    def leaf(
        self, *, now: dt.datetime = T0, days: int = 30, serial: int | None = None
    ) -> x509.Certificate:
        """Issue a leaf whose CDP names its shard's CRL, as the profile does."""
        key = ec.generate_private_key(ec.SECP256R1())
        serial = serial or (secrets.randbits(127) | 1)
        shard = None if self.shards == 0 else shard_for_serial(serial, self.shards)
        cdp = crl_url(self.base_url, self.authority_id, shard)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"leaf-{serial % 100000}"))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(f"leaf{serial % 100000}.example")]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(cdp)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(f"{self.base_url}/ocsp"),
                        )
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()),
                critical=False,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.leaves[serial] = cert
        return cert

    def record(self, cert: x509.Certificate) -> CertificateRecord:
        """The store record the authority would have written for `cert`."""
        return CertificateRecord(
            serial=str(cert.serial_number),
            authority_id=self.authority_id,
            kind=CertificateKind.X509,
            der=cert.public_bytes(serialization.Encoding.DER),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            provisioner=ProvisionerRef(id="p1", name="test", type="JWK"),
            endpoint_id=f"ep-{cert.serial_number}",
            subject_key=f"leaf-{cert.serial_number}",
            common_name=f"leaf-{cert.serial_number}",
            sans=(),
            issued_at=cert.not_valid_before_utc,
        )

    def write_pem(self, directory: Path) -> dict[str, Path]:
        """Write root, intermediate and the CA bundle for openssl."""
        out = {
            "root": directory / "root.pem",
            "ca": directory / "intermediate.pem",
            "chain": directory / "chain.pem",
        }
        root_pem = self.root.public_bytes(serialization.Encoding.PEM)
        ca_pem = self.ca.public_bytes(serialization.Encoding.PEM)
        out["root"].write_bytes(root_pem)
        out["ca"].write_bytes(ca_pem)
        out["chain"].write_bytes(ca_pem + root_pem)
        return out


def make_chain(*, shards: int = 0, now: dt.datetime = T0, base_url: str = BASE_URL) -> Chain:
    """A fresh P-256 root and intermediate."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Cirrus Test Root")
    root = _ca(root_name, root_key, root_name, root_key, now=now, path_len=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca(_name("Cirrus Test Intermediate"), ca_key, root_name, root_key, now=now, path_len=0)
    return Chain(root_key, root, ca_key, ca, shards=shards, base_url=base_url)


def pem(cert: x509.Certificate) -> bytes:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


class World:
    """A chain, a store, a blob folder, a publisher and a responder sharing one clock."""

    def __init__(
        self, tmp: Path, *, shards: int = 0, presign: bool = True, now: dt.datetime = T0
    ) -> None:
        self.clock = FixedClock(now)
        self.now = now
        self.chain: Chain = make_chain(shards=shards, now=now)
        self.store = MemoryStore(clock=self.clock)
        self.blobs = LocalBlobStore(root=tmp / "blobs", fsync=False)
        self.publisher = CRLPublisher(
            revocations=self.store,
            counter=self.store,
            blobs=self.blobs,
            clock=self.clock,
            schedule=CRLSchedule(base_url=BASE_URL),
            authorities=[
                CRLAuthority("intermediate", self.chain.ca, self.chain.ca_signer, shards=shards)
            ],
        )
        self.crls = PublishedCRLs(
            blobs=self.blobs, clock=self.clock, recheck=dt.timedelta(seconds=30)
        )
        self.responder = OCSPResponder(
            authorities=[
                OCSPAuthority("intermediate", self.chain.ca, self.chain.ca_signer, shards=shards)
            ],
            crls=self.crls,
            issued=StoreSerials(self.store),
            clock=self.clock,
            crl_base_url=BASE_URL,
            presign=presign,
        )
        self.http = OCSPEndpoint(responder=self.responder, clock=self.clock)

    def issue(self) -> x509.Certificate:
        leaf = self.chain.leaf(now=self.now)
        self.store.record_issuance(self.chain.record(leaf))
        return leaf

    def revoke(self, leaf: x509.Certificate, reason: int) -> None:
        self.store.revoke(
            Revocation(
                serial=str(leaf.serial_number),
                authority_id="intermediate",
                revoked_at=self.now - dt.timedelta(minutes=5),
                not_after=leaf.not_valid_after_utc,
                reason_code=reason,
            )
        )

    def request(
        self,
        leaf: x509.Certificate,
        *,
        algorithm: hashes.HashAlgorithm | None = None,
        nonce: bytes | None = None,
    ) -> bytes:
        b = ocsp.OCSPRequestBuilder().add_certificate(
            leaf, self.chain.ca, algorithm or hashes.SHA1()
        )
        if nonce is not None:
            b = b.add_extension(x509.OCSPNonce(nonce), critical=False)
        return b.build().public_bytes(serialization.Encoding.DER)

    def ask(self, leaf: x509.Certificate, **kw: object) -> ocsp.OCSPResponse:
        return ocsp.load_der_ocsp_response(self.responder.respond(self.request(leaf, **kw)).der)  # type: ignore[arg-type]
