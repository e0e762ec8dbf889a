"""Complete ACME orders per second: Cirrus vs Pebble, same client, same machine, same run.

Method (fixed, so runs compare):
- One Python ACME client (certbot's `acme` library, ES256 account key) drives
  both servers over HTTPS on loopback. The account is registered once and
  reused; each order is: newOrder for one fresh DNS name, POST-as-GET the
  authorization, answer http-01, poll the authorization until it is not
  pending, finalize with a new P-256 CSR, poll the order until valid,
  download the chain. Polling sleeps 2 ms between tries for both servers
  (the library's own helpers sleep a whole second, which would hide the servers).
- Names resolve through pebble-challtestsrv (every A query -> 127.0.0.1);
  one in-process HTTP server answers http-01 for both CAs on the same port.
- Cirrus: `cirrus up` in its own process on a fresh `cirrus init` authority
  (the real issuing pipeline: ACME provisioner claims, endpoints, records),
  one worker per core on the embedded-default SQLite store; the in-memory
  variant runs one worker (its state cannot be shared between processes).
- Pebble (Debian `pebble`): PEBBLE_VA_NOSLEEP=1 (no validation sleep),
  PEBBLE_WFE_NONCEREJECT=0 (no random badNonce), PEBBLE_AUTHZREUSE=0 (every
  order validates), in-memory state.
- `--orders N` timed orders per server after `--warmup` untimed ones.
- `--mode interleaved` (default): Pebble and both Cirrus variants run at once
  and the client places one order with each in turn (rotating who goes
  first), N rounds, so all three meet the same moments of a noisy machine;
  the headline is the median over rounds of Pebble's order time divided by
  Cirrus's (> 1: Cirrus faster). `--mode sequential` runs all orders of one
  server before the next (the older method; its ratios swing with the machine).
Output: one JSON object with orders/s for Cirrus on its embedded default
(SQLite, durable), Cirrus on the in-process store (Pebble keeps its state in
memory, so this is the like-for-like pair), Pebble, and the ratios.

Run: python bench/acme_orders.py [--orders 200] [--out result.json]
Needs: apt-get install pebble; pip install certbot (for the `acme` library).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import josepy  # noqa: E402
from acme import challenges, client, messages  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from tests.unit.acme.acme_support import (  # noqa: E402
    ChallTestSrv,
    HTTP01Responder,
    TestCA,
    free_port,
    server_tls_files,
)

POLL = 0.002


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Driver:
    """One ACME client bound to one directory, with a reused account."""

    def __init__(self, directory: str, bundle: Path, responder: HTTP01Responder, timeout: float = 45.0) -> None:
        self.key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        net = client.ClientNetwork(
            self.key, alg=josepy.ES256, user_agent="cirrus-bench", verify_ssl=str(bundle), timeout=int(timeout)
        )
        # Which request is under way and the slowest one so far: a stall names its request.
        self.step = ""
        self.slowest: tuple[float, str] = (0.0, "")
        send = net._send_request

        def timed(method: str, url: str, *args: object, **kwargs: object) -> object:
            self.step = f"{method} {url}"
            t0 = time.perf_counter()
            try:
                return send(method, url, *args, **kwargs)
            finally:
                took = time.perf_counter() - t0
                if took > self.slowest[0]:
                    self.slowest = (took, self.step)

        net._send_request = timed  # type: ignore[method-assign]
        self.acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net)
        self.responder = responder
        regr = self.acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
        net.account = regr

    def order(self, name: str) -> str:
        cert_key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
            .sign(cert_key, hashes.SHA256())
        )
        orderr = self.acme.new_order(csr.public_bytes(serialization.Encoding.PEM))
        for authzr in orderr.authorizations:
            challb = next(c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01))
            response, validation = challb.chall.response_and_validation(self.key)
            self.responder.tokens[challb.chall.encode("token")] = validation
            self.acme.answer_challenge(challb, response)
        for url in orderr.body.authorizations:
            while True:
                body = self.acme._post_as_get(url).json()
                if body["status"] == "valid":
                    break
                if body["status"] != "pending":
                    raise RuntimeError(f"authorization {body['status']}: {body}")
                time.sleep(POLL)
        orderr = self.acme.begin_finalization(orderr)
        while True:
            body = self.acme._post_as_get(orderr.uri).json()
            if body["status"] == "valid":
                break
            if body["status"] == "invalid":
                raise RuntimeError(f"order invalid: {body}")
            time.sleep(POLL)
        pem = self.acme._post_as_get(body["certificate"]).text
        if "BEGIN CERTIFICATE" not in pem:
            raise RuntimeError("no certificate")
        return pem


def run(driver: Driver, prefix: str, n: int, warmup: int) -> float:
    for i in range(warmup):
        driver.order(f"w{i}.{prefix}.bench.test")
    start = time.perf_counter()
    for i in range(n):
        driver.order(f"o{i}.{prefix}.bench.test")
    return n / (time.perf_counter() - start)


class CirrusProcess:
    """`cirrus up` on a fresh `cirrus init` authority, in its own process (as Pebble runs in its own)."""

    def __init__(self, work: Path, dns: ChallTestSrv, http_port: int, store_kind: str) -> None:
        from shared.cli.init import init_authority

        ca = work / "ca"
        init_authority(ca, p2c=1000)
        cfg = json.loads((ca / "config.json").read_text())
        port = free_port()
        cfg["address"] = f"127.0.0.1:{port}"
        if store_kind == "memory":
            cfg["store"] = "memory:"
        for p in cfg["authority"]["provisioners"]:
            if p["type"] == "ACME":
                p["cirrus"] = {
                    "allowLoopback": True,
                    "http01Port": http_port,
                    "dnsResolver": dns.resolver,
                    "ordersPerMinute": 0,
                    "validationTimeout": 5,
                }
        (ca / "config.json").write_text(json.dumps(cfg))
        # The in-memory store lives in one process, so that variant runs one worker.
        workers = "1" if store_kind == "memory" else os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "shared.cli",
                "up",
                "--dir",
                str(ca),
                "--workers",
                workers,
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.bundle = ca / "certs" / "root_ca.crt"
        self.directory = f"https://127.0.0.1:{port}/acme/acme/directory"
        import ssl
        import urllib.request

        ctx = ssl.create_default_context(cafile=str(self.bundle))
        for _ in range(200):
            try:
                with urllib.request.urlopen(self.directory, context=ctx, timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("cirrus up did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def start_pebble(work: Path, dns: ChallTestSrv, http_port: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    ca = TestCA.__new__(TestCA)  # only its key material is needed for the listener certificate
    TestCA.__init__(ca, store=None)  # type: ignore[arg-type]
    pdir = work / "pebble"
    pdir.mkdir()
    chain, keyf, bundle = server_tls_files(ca, pdir)
    port, mport = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{mport}",
            "certificate": str(chain),
            "privateKey": str(keyf),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    cfg = pdir / "pebble.json"
    cfg.write_text(json.dumps(config))
    env = dict(
        os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0", PEBBLE_VA_ALWAYS_VALID="0"
    )
    proc = subprocess.Popen(
        ["pebble", "-config", str(cfg), "-dnsserver", dns.resolver],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, f"https://127.0.0.1:{port}/dir", bundle


def interleaved(drivers: dict[str, Driver], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Per-order wall times, one order per server in turn, so every server sees the same machine moments.

    The order of the servers rotates each round, so none is always first after
    the client's own work (CSR key generation) or always last before it.
    """
    names = list(drivers)
    for i in range(warmup):
        for name in names:
            drivers[name].order(f"w{i}.{name}.bench.test")
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            drivers[name].order(f"o{i}.{name}.bench.test")
            times[name].append(time.perf_counter() - t0)
    return times


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--orders", type=int, default=200, help="timed orders per server (rounds when interleaved)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--mode",
        choices=("interleaved", "sequential"),
        default="interleaved",
        help="interleaved: all servers up at once, one order each in turn (default); "
        "sequential: all orders of one server, then the next",
    )
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args()
    rates: dict[str, float] = {}
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        dns = ChallTestSrv()
        responder = HTTP01Responder()
        pebble, pebble_dir, pebble_bundle = start_pebble(work, dns, responder.port)
        cirri: list[CirrusProcess] = []
        try:
            if args.mode == "sequential":
                for kind in ("sqlite", "memory"):
                    kdir = work / kind
                    kdir.mkdir()
                    cirrus = CirrusProcess(kdir, dns, responder.port, kind)
                    try:
                        drv = Driver(cirrus.directory, cirrus.bundle, responder)
                        rates[kind] = run(drv, f"cirrus-{kind}", args.orders, args.warmup)
                    finally:
                        cirrus.close()
                drv = Driver(pebble_dir, pebble_bundle, responder)
                rates["pebble"] = run(drv, "pebble", args.orders, args.warmup)
            else:
                drivers: dict[str, Driver] = {}
                for kind in ("sqlite", "memory"):
                    kdir = work / kind
                    kdir.mkdir()
                    cirri.append(CirrusProcess(kdir, dns, responder.port, kind))
                    drivers[kind] = Driver(cirri[-1].directory, cirri[-1].bundle, responder)
                drivers["pebble"] = Driver(pebble_dir, pebble_bundle, responder)
                times = interleaved(drivers, args.orders, args.warmup)
                rates = {name: len(t) / sum(t) for name, t in times.items()}
        finally:
            for c in cirri:
                c.close()
            pebble.terminate()
            pebble.wait(10)
            responder.close()
            dns.close()
    result: dict[str, object] = {
        "benchmark": "acme_orders",
        "mode": args.mode,
        "orders": args.orders,
        "cirrus_orders_per_s": round(rates["sqlite"], 2),
        "cirrus_memory_store_orders_per_s": round(rates["memory"], 2),
        "pebble_orders_per_s": round(rates["pebble"], 2),
        "ratio_cirrus_over_pebble": round(rates["sqlite"] / rates["pebble"], 3),
        "ratio_cirrus_memory_over_pebble": round(rates["memory"] / rates["pebble"], 3),
    }
    if times:
        # Speed ratio per round (Pebble's order time over Cirrus's, > 1: Cirrus faster); the median
        # and quartiles shrug off the odd order that met a busy moment of the machine.
        for kind, key in (("sqlite", "cirrus"), ("memory", "cirrus_memory")):
            per_round = [p / c for p, c in zip(times["pebble"], times[kind], strict=True)]
            result[f"median_ratio_{key}_over_pebble"] = round(_quantile(per_round, 0.5), 3)
            result[f"quartiles_ratio_{key}_over_pebble"] = [
                round(_quantile(per_round, 0.25), 3),
                round(_quantile(per_round, 0.75), 3),
            ]
        for name, t in times.items():
            result[f"median_ms_{'cirrus' if name == 'sqlite' else 'cirrus_memory' if name == 'memory' else name}"] = (
                round(_quantile(t, 0.5) * 1000, 2)
            )
    result["method"] = (
        f"{args.mode}, one acme-library client, account reused, http-01 per order, "
        "2 ms polling; cirrus = embedded SQLite store (durable), memory = in-process store "
        "(like Pebble's); interleaved: median of per-round Pebble/Cirrus order-time ratios"
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
