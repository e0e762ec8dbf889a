"""The serverless issuing stack, assembled for tests: step-ca API + Firestore + Cloud KMS.

Everything on the request path is real: `CirrusApp` (driven through Werkzeug's
test client), the `Authority` and `Revoker` that `build_services` wires from a
`cirrus init` config, `FirestoreStore` on the Firestore emulator (its gRPC
channel runs through `firestore_grpc.Faults`, which counts every RPC and can
inject outages), and `CloudKMS` on the real `google-cloud-kms` client talking
to the fake KMS gRPC server in `tests/fakes/kms_server.py`.

What is swapped after `build_services`: the issuing key. A P-256 key is
created in the fake KMS through `CloudKMS.create_key`, a root is made with
cryptography, an intermediate certificate is issued for the KMS public key,
and the authority signs through `as_private_key(signer)`, so every
certificate costs an `AsymmetricSign` RPC exactly as in production.

A second JWK provisioner, `norenew`, shares the default provisioner's key but
has `disableRenewal`, so one stack serves both endpoint-grouping rules.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from firestore_grpc import COMMIT, PROJECT, RUN_QUERY, Faults, faulty_client
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.authority import Authority, AuthorityStores
from shared.cli.client import renew_bearer_token
from shared.config import Settings
from shared.keys.adapter import as_private_key
from shared.keys.base import KeyType
from shared.keys.cloudkms import CloudKMS
from shared.retry import RetryPolicy
from shared.runtime import Services, build_services
from shared.store import firestore_docs as docs
from shared.store.firestore import FirestoreStore
from shared.x509.profile import Issuer
from tests.fakes.kms_server import FakeKMS, insecure_client, serve_fake_kms
from tests.helpers import make_csr, mint_token, sign_claims

KEY_URI = f"cloudkms:projects/{PROJECT}/locations/global/keyRings/cirrus/cryptoKeys/issuing/cryptoKeyVersions/1"
RENEW_AUDIENCE = "https://127.0.0.1:9443/1.0/renew"

# Short backoff so fault tests finish in seconds; the deadline is set per stack.
FAST = {"initial_delay": 0.01, "max_delay": 0.05, "jitter": 0.0, "attempt_timeout": 2.0}


class CountingFaults(Faults):
    """`Faults` that also tells applied writes from refused ones.

    A Commit the server refuses (a create that meets an existing document)
    reaches the emulator but changes nothing; `applied_writes` holds only the
    writes of Commits that came back OK, `writes` (inherited) every write sent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.applied_writes: list[Any] = []
        # What happens to each next Commit, in order: "ok", "lose" (applied, answer lost) or
        # "fail" (not sent); lets a test aim at the record write rather than the claim before it.
        self.commit_plan: list[str] = []

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method == COMMIT and self.commit_plan:
            plan = {"lose": self.lose_answer, "fail": self.fail_before}.get(self.commit_plan.pop(0))
            if plan is not None:
                plan[COMMIT] = plan.get(COMMIT, 0) + 1
        outcome = super().intercept_unary_unary(continuation, details, request)
        if details.method == COMMIT and outcome.code() == grpc.StatusCode.OK:
            self.applied_writes.extend(request.writes)
        return outcome

    def reset(self) -> None:
        """Forget everything counted so far (faults stay as configured)."""
        self.attempted.clear()
        self.delivered.clear()
        self.writes.clear()
        self.applied_writes.clear()
        self.documents_read.clear()


@dataclass(frozen=True)
class Cost:
    """What one API call cost in backend operations."""

    commits: int
    writes_sent: int
    writes_applied: int
    documents_got: int  # documents named by BatchGetDocuments (one billed read each, found or not)
    queries: int  # RunQuery calls (each billed at least one read)
    kms: dict[str, int] = field(default_factory=dict)

    @property
    def reads(self) -> int:
        """Billed document reads, counting every query as one (none run on these paths)."""
        return self.documents_got + self.queries

    @property
    def kms_signs(self) -> int:
        return self.kms.get("AsymmetricSign", 0)

    @property
    def kms_calls(self) -> int:
        return sum(self.kms.values())


@dataclass
class Stack:
    """One wired issuing stack and the meters on its backends."""

    services: Services
    api: Client
    store: FirestoreStore
    observer: FirestoreStore
    faults: CountingFaults
    kms: FakeKMS
    authority_dir: Path
    root: x509.Certificate
    intermediate: x509.Certificate

    def start_metering(self) -> None:
        self.faults.reset()
        self.kms.calls.clear()

    def cost(self) -> Cost:
        f = self.faults
        return Cost(
            commits=f.delivered.count(COMMIT),
            writes_sent=len(f.writes),
            writes_applied=len(f.applied_writes),
            documents_got=len(f.documents_read),
            queries=f.delivered.count(RUN_QUERY),
            kms=dict(self.kms.calls),
        )

    # ------------------------------------------------------------ API calls, as the step CLI makes them

    def sign_token(self, subject: str, *, provisioner: str = "admin") -> str:
        return mint_token(self.authority_dir, sign_claims(subject, [subject], iss=provisioner))

    def sign(self, subject: str, *, provisioner: str = "admin", token: str | None = None) -> Any:
        """POST /1.0/sign; returns the test response (certificate and key in `.issued` on 201)."""
        csr, key = make_csr(subject, [subject])
        ott = token or self.sign_token(subject, provisioner=provisioner)
        response = self.api.post("/1.0/sign", json={"csr": csr, "ott": ott})
        response.issued = None
        if response.status_code == 201:
            cert = x509.load_pem_x509_certificate(response.get_json()["crt"].encode())
            response.issued = (cert, key, response.get_json()["certChain"])
        return response

    def renew_bearer(self, chain_pem: list[str], key: Any, tmp: Path) -> Any:
        """POST /1.0/renew with step's Bearer (x5cInsecure) token."""
        crt = tmp / f"{uuid.uuid4().hex}.crt"
        crt.write_text("".join(chain_pem))
        keyf = tmp / f"{uuid.uuid4().hex}.key"
        keyf.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        token = renew_bearer_token(crt, keyf, RENEW_AUDIENCE)
        return self.api.post("/1.0/renew", headers={"Authorization": f"Bearer {token}"})

    def revoke(self, serial: int) -> Any:
        token = mint_token(self.authority_dir, sign_claims(str(serial), None, op="revoke"))
        return self.api.post("/1.0/revoke", json={"serial": str(serial), "ott": token, "passive": True})

    # ------------------------------------------------------------ what is in Firestore (seen by a healthy client)

    def documents(self, collection: str) -> list[dict[str, Any]]:
        col = self.observer._client.collection(self.store.prefix + collection)
        return [dict(s.to_dict()) for s in col.stream()]

    def certificate_serials(self) -> list[str]:
        return sorted(d["serial"] for d in self.documents(docs.CERTIFICATES))

    def counts(self) -> dict[str, int]:
        return {
            name: len(self.documents(name))
            for name in (docs.CERTIFICATES, docs.ENDPOINTS, docs.CLAIMS, docs.REVOCATIONS, docs.EVENTS)
        }


# --------------------------------------------------------------------------- building it


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def kms_hierarchy(manager: CloudKMS) -> tuple[x509.Certificate, x509.Certificate, Issuer]:
    """Create the issuing key in KMS; return (root, intermediate for the KMS key, issuer)."""
    signer = manager.create_key(KEY_URI, KeyType.EC_P256)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Cirrus Cost Test Root"))
        .issuer_name(_name("Cirrus Cost Test Root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    public = signer.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(_name("Cirrus Cost Test KMS Intermediate"))
        .issuer_name(root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )  # fmt: skip
    return root, intermediate, Issuer.of(intermediate, as_private_key(signer))


def _add_norenew_provisioner(authority_dir: Path) -> Path:
    """Write config-costs.json: the init config plus a renewal-disabled JWK provisioner."""
    cfg = json.loads((authority_dir / "config.json").read_text())
    admin = cfg["authority"]["provisioners"][0]
    norenew = {k: v for k, v in admin.items() if k not in ("name", "claims")}
    norenew.update({"name": "norenew", "claims": {"disableRenewal": True}})
    cfg["authority"]["provisioners"].append(norenew)
    path = authority_dir / "config-costs.json"
    path.write_text(json.dumps(cfg))
    return path


@contextmanager
def issuing_stack(
    authority_dir: Path,
    *,
    store_deadline: float = 20.0,
    kms_deadline: float = 20.0,
    client: Any = None,
) -> Iterator[Stack]:
    """Build the stack on the emulator (FIRESTORE_EMULATOR_HOST must be set) and a fake KMS.

    Args:
        authority_dir: a `cirrus init` directory (tokens are minted with its provisioner key).
        store_deadline: the Firestore retry deadline (short in fault tests).
        kms_deadline: the Cloud KMS retry deadline.
        client: a Firestore client to use instead of the counting one (an unreachable one, say).
    """
    faults = CountingFaults()
    prefix = f"c{uuid.uuid4().hex[:12]}_"
    store = FirestoreStore(
        prefix=prefix,
        client=client if client is not None else faulty_client(faults),
        retry=RetryPolicy(deadline=store_deadline, **FAST),  # type: ignore[arg-type]
    )
    observer = FirestoreStore(project=PROJECT, prefix=prefix, retry=RetryPolicy(deadline=20))
    with serve_fake_kms(FakeKMS()) as (fake, address):
        manager = CloudKMS(client=insecure_client(address), retry=RetryPolicy(deadline=kms_deadline, **FAST))  # type: ignore[arg-type]
        root, intermediate, issuer = kms_hierarchy(manager)
        settings = Settings.load(_add_norenew_provisioner(authority_dir))
        services = build_services(settings, store=store)
        services.authority = Authority(
            authority_id=settings.authority_id,
            issuer=issuer,
            intermediates=[intermediate],
            roots=[root],
            provisioners=services.provisioners,
            stores=AuthorityStores(issuance=store, revocations=store, endpoints=store),
            clock=services.clock,
            backdate=settings.backdate,
        )
        services.roots = [root]
        services.intermediates = [intermediate]
        stack = Stack(
            services=services,
            api=Client(CirrusApp(services)),
            store=store,
            observer=observer,
            faults=faults,
            kms=fake,
            authority_dir=authority_dir,
            root=root,
            intermediate=intermediate,
        )
        try:
            yield stack
        finally:
            services.close()
            store._client.close()
            observer.close()


def kms_call_summary(calls: collections.Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(calls.items())) or "-"
