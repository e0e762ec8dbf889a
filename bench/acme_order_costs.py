"""Where one complete ACME order's server time goes: store calls, store time, server CPU.

Method (fixed, so runs compare):
- A fresh `cirrus init` authority served in this process by the real app
  (`CirrusApp` with the default mounts, so the real issuing pipeline signs and
  records, built as `cirrus up` builds it: direct ACME mounts, shared nonce
  ledger), on the embedded-default SQLite store or, with `--store memory`, the
  in-process one. No HTTP server or TLS: requests go through werkzeug's test
  client, so this isolates the ACME layer, the store and the authority.
- The same order as bench/acme_orders.py, from a hand-rolled client that reuses
  the Replay-Nonce of each response: newOrder for one fresh DNS name, POST-as-GET
  the authorization, answer http-01 (validated through pebble-challtestsrv DNS and
  an in-process responder), POST-as-GET the authorization, finalize, POST-as-GET
  the order, download: 7 JWS POSTs.
- Every store method the order touches is wrapped to count calls and time them.
  Server CPU is the thread CPU time spent inside the app call (the responder's
  thread is not counted; the DNS server is another process).
- `--orders N` measured orders after 10 unmeasured ones.
Output: one JSON object: ms per order (wall inside the app, thread CPU), store
calls per order by method, store ms per order by method.

Run: python bench/acme_order_costs.py [--orders 300] [--store sqlite|memory] [--out result.json]
Needs: pebble-challtestsrv (Debian `pebble`).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from werkzeug.test import Client  # noqa: E402

from shared.acme.jws import thumbprint  # noqa: E402
from tests.unit.acme.acme_support import ChallTestSrv, HTTP01Responder, b64, jwk_of, make_csr, make_jws  # noqa: E402

STORE_METHODS = (
    "claim",
    "create_document",
    "get_document",
    "get_documents",
    "update_document",
    "find_documents",
    "record_issuance",
    "get_certificate",
    "get_endpoint",
    "create_document_claiming",
    "update_document_claiming",
)
#: Which of those are write transactions (the rest are reads).
WRITES = frozenset(
    {
        "claim",
        "create_document",
        "update_document",
        "record_issuance",
        "create_document_claiming",
        "update_document_claiming",
    }
)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()

    from shared.acme.nonce_ledger import NONCE_LEDGER_EXTRA, SharedNonceLedger
    from shared.api.app import CirrusApp
    from shared.api.mounts import default_direct_mounts, default_mounts
    from shared.cli.init import init_authority
    from shared.config import Settings
    from shared.runtime import build_services

    dns, responder = ChallTestSrv(), HTTP01Responder()
    with tempfile.TemporaryDirectory() as tmp:
        ca = Path(tmp) / "ca"
        init_authority(ca, p2c=1000)
        cfg = json.loads((ca / "config.json").read_text())
        if args.store == "memory":
            cfg["store"] = "memory:"
        prov = ""
        for p in cfg["authority"]["provisioners"]:
            if p["type"] == "ACME":
                prov = p["name"]
                p["cirrus"] = {
                    "allowLoopback": True,
                    "http01Port": responder.port,
                    "dnsResolver": dns.resolver,
                    "ordersPerMinute": 0,
                    "validationTimeout": 5,
                }
        (ca / "config.json").write_text(json.dumps(cfg))
        services = build_services(Settings.load(ca / "config.json"))
        store: Any = services.store
        calls: collections.Counter[str] = collections.Counter()
        seconds: collections.Counter[str] = collections.Counter()

        def counted(name: str) -> Any:
            inner = getattr(store, name)

            def call(*a: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return inner(*a, **kw)
                finally:
                    seconds[name] += time.perf_counter() - t
                    calls[name] += 1

            return call

        for name in STORE_METHODS:
            if hasattr(store, name):  # a store without the claiming writes still measures
                setattr(store, name, counted(name))
        # As `cirrus up` builds it: ACME answered straight from the environ, nonces spent in the
        # workers' shared memory. (The test client runs no after-answer work, so challenges and
        # finalize complete before their answers here.)
        services.extras[NONCE_LEDGER_EXTRA] = SharedNonceLedger(1)
        http = Client(CirrusApp(services, mounts=default_mounts(services), direct=default_direct_mounts(services)))
        directory = http.get(f"https://localhost/acme/{prov}/directory").get_json()
        key = ec.generate_private_key(ec.SECP256R1())
        state: dict[str, Any] = {"nonce": http.head(directory["newNonce"]).headers["Replay-Nonce"], "kid": None}
        spent = {"wall": 0.0, "cpu": 0.0}

        def post(url: str, payload: Any) -> Any:
            body = json.dumps(make_jws(key, url, payload, nonce=state["nonce"], kid=state["kid"])).encode()
            w, c = time.perf_counter(), time.thread_time()
            r = http.post(url, data=body, headers={"Content-Type": "application/jose+json"})
            spent["wall"] += time.perf_counter() - w
            spent["cpu"] += time.thread_time() - c
            state["nonce"] = r.headers["Replay-Nonce"]
            if r.status_code >= 400:
                raise RuntimeError(r.get_data(as_text=True))
            return r

        state["kid"] = post(directory["newAccount"], {"termsOfServiceAgreed": True}).headers["Location"]
        thumb = thumbprint(jwk_of(key))

        def order(name: str) -> None:
            r = post(directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]})
            body, url = r.get_json(), r.headers["Location"]
            for authz in body["authorizations"]:
                ch = next(c for c in post(authz, None).get_json()["challenges"] if c["type"] == "http-01")
                responder.tokens[ch["token"]] = f"{ch['token']}.{thumb}"
                post(ch["url"], {})
                if post(authz, None).get_json()["status"] != "valid":
                    raise RuntimeError("authorization not valid")
            post(body["finalize"], {"csr": b64(make_csr([name])[1])})
            done = post(url, None).get_json()
            if b"BEGIN CERTIFICATE" not in post(done["certificate"], None).get_data():
                raise RuntimeError("no certificate")

        for i in range(10):
            order(f"w{i}.costs.test")
        calls.clear()
        seconds.clear()
        spent.update(wall=0.0, cpu=0.0)
        for i in range(args.orders):
            order(f"o{i}.costs.test")
        services.close()
    responder.close()
    dns.close()
    n = args.orders
    result = {
        "benchmark": "acme_order_costs",
        "store": args.store,
        "orders": n,
        "server_ms_per_order": round(1000 * spent["wall"] / n, 3),
        "server_cpu_ms_per_order": round(1000 * spent["cpu"] / n, 3),
        "store_ms_per_order": round(1000 * sum(seconds.values()) / n, 3),
        "store_writes_per_order": round(sum(v for k, v in calls.items() if k in WRITES) / n, 2),
        "store_reads_per_order": round(sum(v for k, v in calls.items() if k not in WRITES) / n, 2),
        "store_calls_per_order": {k: round(v / n, 2) for k, v in sorted(calls.items())},
        "store_ms_per_order_by_call": {k: round(1000 * v / n, 3) for k, v in sorted(seconds.items())},
        "method": "in-process CirrusApp (no HTTP server/TLS), 7 JWS POSTs per order, http-01, real authority",
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
