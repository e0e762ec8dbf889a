"""CPU per certificate for `POST /1.0/sign` with a GCP instance identity token, beside a JWK token.

Method (fixed, so runs compare):
- A fresh authority (`cirrus init`, EC P-256, SQLite store) gets a GCP provisioner whose JWKS is
  the loopback fake Google key server (tests/fakes/gcp_metadata.py, RS256 2048-bit key); the
  provisioner has `disableTrustOnFirstUse` and each token names its own instance, so every token
  yields a certificate.
- N tokens of each kind and one P-256 CSR per kind are made before timing; the key set is fetched
  once before timing (as a warm instance has it cached).
- The requests go through the full WSGI app in-process (Werkzeug's test client), one at a time;
  CPU is this process's `time.process_time()` over the N requests (the fake key server idles).
- The two kinds run in turn for ROUNDS rounds; the median per kind is printed with every round.
Prints one JSON object: microseconds of CPU per certificate.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from werkzeug.test import Client  # noqa: E402

from shared.api.app import CirrusApp  # noqa: E402
from shared.api.mounts import default_mounts  # noqa: E402
from shared.cli.init import init_authority  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.runtime import build_services  # noqa: E402
from tests.fakes.gcp_metadata import FakeGoogle, serve_fake_google  # noqa: E402
from tests.helpers import AUDIENCE_HOST, make_csr, mint_token, sign_claims  # noqa: E402

N = int(os.environ.get("BENCH_N", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, serve_fake_google() as (google, base):
        d = Path(tmp) / "ca"
        init_authority(d, name="Bench", p2c=1000)
        cfg = json.loads((d / "config.json").read_text())
        cfg["authority"]["provisioners"].append(
            {"type": "GCP", "name": "google", "disableTrustOnFirstUse": True,
             "cirrus": {"jwksURL": f"{base}/oauth2/v3/certs"}}
        )
        (d / "config.json").write_text(json.dumps(cfg))
        services = build_services(Settings.load(d / "config.json"))
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        aud = f"https://{AUDIENCE_HOST}/1.0/sign#gcp/google"
        gcp_csr, _ = make_csr("web-1", ["web-1.example.com"])
        jwk_csr, _ = make_csr("app.example.com", ["app.example.com"])
        warm = _gcp_tokens(google, aud, 1, "warm")
        assert api.post("/1.0/sign", json={"csr": gcp_csr, "ott": warm[0]}).status_code == 201
        rounds: list[dict[str, float]] = []
        for r in range(ROUNDS):
            gcp = _gcp_tokens(google, aud, N, f"r{r}")
            jwk = [mint_token(d, sign_claims("app.example.com", ["app.example.com"])) for _ in range(N)]
            rounds.append({
                "jwk_us": _cpu_per_request(api, jwk_csr, jwk),
                "gcp_us": _cpu_per_request(api, gcp_csr, gcp),
            })
        services.close()
    out = {
        "benchmark": "cloud_sign_cpu",
        "requests_per_round": N,
        "jwk_cpu_us_per_cert": statistics.median(x["jwk_us"] for x in rounds),
        "gcp_cpu_us_per_cert": statistics.median(x["gcp_us"] for x in rounds),
        "rounds": rounds,
    }
    print(json.dumps(out))


def _gcp_tokens(google: FakeGoogle, aud: str, n: int, tag: str) -> list[str]:
    engine = google.identity_claims(aud)["google"]["compute_engine"]
    return [
        google.identity_token(aud, google={"compute_engine": {**engine, "instance_id": f"{tag}-{i}"}})
        for i in range(n)
    ]


def _cpu_per_request(api: Client, csr: str, tokens: list[str]) -> float:
    start = time.process_time()
    for t in tokens:
        r = api.post("/1.0/sign", json={"csr": csr, "ott": t})
        if r.status_code != 201:
            raise SystemExit(f"sign failed: {r.status_code} {r.get_data(as_text=True)}")
    return round((time.process_time() - start) / len(tokens) * 1e6, 1)


if __name__ == "__main__":
    main()
