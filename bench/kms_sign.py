"""Signing cost per certificate: softkms fast path, softkms through the adapter, Cloud KMS.

Method (fixed so runs compare):
- Keys: EC P-256. One self-contained CertificateBuilder per iteration (leaf key
  generated once, serial random), signed with `as_private_key(signer)`.
- `softkms_builder_key`: the signer's `builder_key()` fast path.
- `softkms_adapter`: the same key wrapped so only `sign()`/`public_key()` are
  visible (what an HSM-like signer costs on the Python side).
- `cloudkms_fake`: the real `google-cloud-kms` client over loopback gRPC to
  tests/fakes/kms_server.py: the client-side cost of one AsymmetricSign plus
  CRC32C checks (real KMS adds its network and HSM latency, tens of ms).
- 100 warm-up iterations untimed, then N timed with `time.perf_counter`.
- Also reports KMS calls per certificate counted by the fake.
- `awskms_moto`: boto3 over loopback HTTP to moto's KMS server in this process
  (tests/fakes/moto_kms.py): the client-side cost of one `Sign` with
  MessageType=DIGEST plus moto's own handling (real AWS adds network and HSM
  latency, typically 5-20 ms per call).
- `pkcs11_softhsm`: python-pkcs11 to a SoftHSM2 token (CKM_ECDSA over a local
  digest): a software HSM behind the real PKCS#11 interface.
- `latency_ms_p50`/`p95`: per-certificate latency over the timed iterations.

Run: `python bench/kms_sign.py [--n 2000] [--out result.json]`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.keys.adapter import as_private_key
from shared.keys.awskms import AWSKMS
from shared.keys.base import KeyType, PublicKey, Signer
from shared.keys.cloudkms import CloudKMS
from shared.keys.pkcs11 import PKCS11
from shared.keys.softkms import SoftKMS
from tests.fakes import softhsm
from tests.fakes.kms_server import insecure_client, serve_fake_kms
from tests.fakes.moto_kms import kms_client, serve_moto_kms

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LEAF = ec.generate_private_key(ec.SECP256R1()).public_key()
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])


class SignOnly:
    def __init__(self, inner: Signer) -> None:
        self._inner = inner

    def public_key(self) -> PublicKey:
        return self._inner.public_key()

    def sign(self, data: bytes) -> bytes:
        return self._inner.sign(data)


def issue(signer: Signer) -> None:
    (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(LEAF)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(hours=24))
        .sign(as_private_key(signer), hashes.SHA256())
    )


def measure(signer: Signer, n: int) -> dict[str, float]:
    for _ in range(100):
        issue(signer)
    laps: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        lap = time.perf_counter()
        issue(signer)
        laps.append(time.perf_counter() - lap)
    seconds = time.perf_counter() - start
    laps.sort()
    return {
        "n": n,
        "seconds": seconds,
        "certs_per_s": n / seconds,
        "ms_per_cert": 1000 * seconds / n,
        "latency_ms_p50": 1000 * laps[len(laps) // 2],
        "latency_ms_p95": 1000 * laps[int(len(laps) * 0.95)],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        soft = SoftKMS(password=b"bench").create_key(f"softkms:path={tmp}/k.pem", KeyType.EC_P256)
        result["softkms_builder_key"] = measure(soft, args.n)
        result["softkms_adapter"] = measure(SignOnly(soft), args.n)
    with serve_fake_kms() as (fake, address):
        kms = CloudKMS(client=insecure_client(address))
        signer = kms.create_key(
            "cloudkms:projects/b/locations/global/keyRings/r/cryptoKeys/k;protection-level=SOFTWARE",
            KeyType.EC_P256,
        )
        before = fake.calls["AsymmetricSign"]
        n = max(1, args.n // 4)
        result["cloudkms_fake"] = measure(signer, n)
        result["cloudkms_fake"]["asymmetric_sign_per_cert"] = (
            fake.calls["AsymmetricSign"] - before
        ) / (n + 100)
        result["cloudkms_fake"]["get_public_key_calls"] = fake.calls["GetPublicKey"]
    with serve_moto_kms() as endpoint:
        aws = AWSKMS(client=kms_client(endpoint)).create_key("awskms:key-id=alias/bench", KeyType.EC_P256)
        result["awskms_moto"] = measure(aws, max(1, args.n // 4))
    if softhsm.available():
        with tempfile.TemporaryDirectory() as tmp:
            token = softhsm.init_token(Path(tmp))
            hsm = PKCS11(module_path=token.module).create_key(token.uri("bench"), KeyType.EC_P256)
            result["pkcs11_softhsm"] = measure(hsm, max(1, args.n // 4))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
