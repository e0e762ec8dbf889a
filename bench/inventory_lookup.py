"""What an inventory costs at issuance: one entry lookup, and a whole `/1.0/sign` with and without it.

Method (fixed, so runs compare):
- A fresh `cirrus init` authority (EC P-256) on its embedded SQLite store, one inventory of
  --entries hosts (default 100,000) imported through the store in batches of 10,000.
- "lookup": `get_inventory_entry` for random existing keys, best of --repeat runs of --n
  lookups (one point read of a WITHOUT ROWID table), wall time.
- "sign": `POST /1.0/sign` through the real WSGI app (werkzeug test client, no HTTP server, no
  TLS), the JWK provisioner with the same X.509 template and the same certificate in both
  configurations: the first gives the template its `.Inventory` from `templateData`, the
  second looks it up (`options.inventory`, key `subject`, `require`, `restrictNames`).
  Tokens and CSRs are made before timing. The figure is the thread's CPU time per request
  (the request runs on this thread), which waiting on a busy machine does not inflate. The
  two configurations alternate round by round (--rounds; which goes first alternates too),
  and the median of the per-round ratios is reported.
Prints one JSON object.

Usage: python bench/inventory_lookup.py [--entries 100000] [--n 20000] [--signs 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
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
from shared.inventory.base import Inventory  # noqa: E402
from shared.runtime import build_services  # noqa: E402
from tests.helpers import make_csr, mint_sign_token  # noqa: E402

TEMPLATE = ('{"subject": {"commonName": {{ toJson .Subject.CommonName }}}, "sans": {{ toJson .SANs }},'
            ' "keyUsage": ["digitalSignature"], "extKeyUsage": ["serverAuth", "clientAuth"]'
            '{{ if .Inventory }}, "extensions": [{"id": "1.3.6.1.4.1.57264.99.1", "critical": false,'
            ' "value": {{ toJson .Inventory.der }}}]{{ end }}}')


DER = "DAdiaWxsaW5n"  # DER UTF8String "billing"


def _config(directory: Path, name: str, inventory: bool) -> Path:
    cfg = json.loads((directory / "config.json").read_text())
    jwk = next(p for p in cfg["authority"]["provisioners"] if p["type"] == "JWK")
    # Without the option the same entry comes from templateData, so both render the same certificate
    # and the difference is the lookup and the name check alone.
    jwk["options"] = {"x509": {"template": TEMPLATE, "templateData": {"Inventory": {"der": DER}}}}
    if inventory:
        jwk["options"]["inventory"] = {"name": "hosts", "key": "subject", "require": True, "restrictNames": True}
    path = directory / name
    path.write_text(json.dumps(cfg))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--signs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "ca"
        init_authority(d, name="Bench", p2c=1000)
        plain = build_services(Settings.load(_config(d, "plain.json", False)))
        looked = build_services(Settings.load(_config(d, "inventory.json", True)))
        store = plain.store
        store.create_inventory(Inventory("hosts", "hosts", dt.datetime.now(dt.UTC)))
        keys = [f"host-{i:06d}.example.internal" for i in range(args.entries)]
        for start in range(0, len(keys), 10_000):
            store.put_inventory_entries("hosts", {k: {"der": DER, "allowedNames": [k]}
                                                  for k in keys[start:start + 10_000]})
        rng = random.Random(7)
        best = 0.0
        for _ in range(args.repeat):
            wanted = [rng.choice(keys) for _ in range(args.n)]
            started = time.perf_counter()
            for key in wanted:
                if store.get_inventory_entry("hosts", key) is None:
                    raise SystemExit(f"missing {key}")
            best = max(best, args.n / (time.perf_counter() - started))

        apps = {"plain": Client(CirrusApp(plain, mounts=default_mounts(plain))),
                "inventory": Client(CirrusApp(looked, mounts=default_mounts(looked)))}
        per_round: list[dict[str, float]] = []
        for round_no in range(args.rounds):
            row: dict[str, float] = {}
            order = list(apps.items()) if round_no % 2 == 0 else list(reversed(apps.items()))
            for label, api in order:
                bodies = []
                for _ in range(args.signs):
                    name = rng.choice(keys)
                    bodies.append({"csr": make_csr(name, [name])[0], "ott": mint_sign_token(d, name, [name])})
                started = time.thread_time()
                for body in bodies:
                    answer = api.post("/1.0/sign", json=body)
                    if answer.status_code != 201:
                        raise SystemExit(answer.text)
                row[label] = 1000 * (time.thread_time() - started) / args.signs
            per_round.append(row)
        ratios = sorted(r["inventory"] / r["plain"] for r in per_round)
        plain.close()
        looked.close()
    print(json.dumps({
        "benchmark": "inventory_lookup",
        "store": "sqlite",
        "entries": args.entries,
        "lookups_per_second": round(best, 1),
        "microseconds_per_lookup": round(1e6 / best, 1),
        "sign_cpu_ms_template_only": round(min(r["plain"] for r in per_round), 3),
        "sign_cpu_ms_template_and_inventory": round(min(r["inventory"] for r in per_round), 3),
        "sign_inventory_extra_percent_median_round": round(100 * (ratios[len(ratios) // 2] - 1), 1),
        "rounds": per_round,
        "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
