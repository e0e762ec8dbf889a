"""SSH certificates per second through `/ssh/sign`, and the CPU one costs.

Method (fixed, so runs compare):
- A fresh `cirrus init` authority (P-256 SSH CA keys, softkms) served in this
  process by the real app (`CirrusApp` with the default mounts), on the
  embedded-default SQLite store or, with `--store memory`, the in-process one.
  No HTTP server or TLS: requests go through werkzeug's test client, so this
  isolates token checks, the wire format, the KeyManager signature and the
  record write.
- Each request: a fresh JWK token with the `step.ssh` claim (minted before the
  timer starts), one Ed25519 user key, a user certificate with two principals.
- `--count N` measured requests after 20 unmeasured ones, one thread.
Output: one JSON object: certificates per second (wall), ms per certificate
(wall and process CPU).

Run: python bench/ssh_sign.py [--count 2000] [--store sqlite|memory] [--out result.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from werkzeug.test import Client  # noqa: E402

from shared.api.app import CirrusApp  # noqa: E402
from shared.api.mounts import default_mounts  # noqa: E402
from shared.cli.init import init_authority  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.runtime import build_services  # noqa: E402
from shared.ssh.wire import public_key_blob  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    d = Path(tempfile.mkdtemp()) / "ca"
    init_authority(d, name="Bench", p2c=1000)
    store = None
    if args.store == "memory":
        from shared.store.memory import MemoryStore

        store = MemoryStore()
    services = build_services(Settings.load(d / "config.json"), store=store)
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    jwk = json.loads((d / "secrets" / "provisioner.jwk").read_text())
    key = jwt.PyJWK(jwk).key
    now = int(time.time())

    def body(i: int) -> dict[str, object]:
        claims = {"iss": "admin", "sub": f"user{i}", "aud": "https://127.0.0.1:9443/1.0/ssh/sign", "nbf": now,
                  "iat": now, "exp": now + 3600, "jti": secrets.token_hex(32),
                  "step": {"ssh": {"certType": "user", "principals": [f"user{i}", "ops"]}}}
        token = jwt.encode(claims, key, algorithm="ES256", headers={"kid": jwk["kid"]})
        pub = base64.b64encode(public_key_blob(ed25519.Ed25519PrivateKey.generate().public_key())).decode()
        return {"publicKey": pub, "ott": token}

    warm = [body(i) for i in range(20)]
    measured = [body(i) for i in range(20, 20 + args.count)]
    for b in warm:
        assert api.post("/ssh/sign", json=b).status_code == 201
    wall, cpu = time.perf_counter(), time.process_time()
    for b in measured:
        r = api.post("/ssh/sign", json=b)
        assert r.status_code == 201, r.text
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {
        "bench": "ssh_sign",
        "store": args.store,
        "count": args.count,
        "certsPerSecond": round(args.count / wall, 1),
        "msPerCertWall": round(wall * 1000 / args.count, 3),
        "msPerCertCPU": round(cpu * 1000 / args.count, 3),
    }
    services.close()
    text = json.dumps(result)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
