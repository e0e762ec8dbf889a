"""What the webhook transport's safeguards cost per call: the whole-call watchdog and the TLS client certificate.

Method (fixed, so runs compare):
- A loopback HTTP(S) server in a child process (so its CPU is not counted) answers every POST
  with a small step-ca webhook answer, one connection per call (as the clients make them).
- "watchdog": `shared.webhooks.bounded_post.post` over plain http, with the whole-call watchdog
  (`shared.webhooks.watchdog`) and with it replaced by a no-op.
- "client_cert": `WebhookClient.call` over https to a server that asks for a client certificate
  but does not require one (`CERT_OPTIONAL`), for a hook presenting the authority's (ECDSA P-256,
  issued once by a software-key intermediate, `shared.webhooks.identity`) and one with
  `disableTLSClientAuth`.
- Each variant pair alternates round by round (--rounds; which goes first alternates too), each
  round --n calls; the figure is this process's CPU time per call (`time.process_time`, the
  watchdog's thread included), and the median of the per-round ratios is reported.
- "identity_first_use": the cost, once per instance and 16 hours, of the client certificate (fresh
  key, one signature by a software key, a new TLS context with the system and CA roots, the pair
  loaded into it), CPU time, median of up to 100 makes. Most of it is loading the system roots.
Prints one JSON object.

Usage: python bench/webhook_call.py [--n 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID  # noqa: E402

from shared.clock import SystemClock  # noqa: E402
from shared.webhooks import bounded_post  # noqa: E402
from shared.webhooks.client import WebhookClient  # noqa: E402
from shared.webhooks.config import load_one  # noqa: E402
from shared.webhooks.identity import issuing_identity  # noqa: E402
from shared.x509.profile import Issuer, ca_name, intermediate, self_signed_root, sign_certificate  # noqa: E402

SERVER = r"""
import ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = b'{"allow": true, "data": {"team": "payments"}}'
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
server.daemon_threads = True
if len(sys.argv) > 1:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1])
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(sys.argv[2])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def child_server(*args: str) -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait()


def cpu_per_call(fn: Callable[[], object], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n


def alternate(a: Callable[[], object], b: Callable[[], object], n: int, rounds: int) -> dict[str, float]:
    """(median CPU per call of a, of b, median per-round ratio b/a), alternating which runs first."""
    ta, tb, ratios = [], [], []
    for r in range(rounds):
        if r % 2:
            y, x = cpu_per_call(b, n), cpu_per_call(a, n)
        else:
            x, y = cpu_per_call(a, n), cpu_per_call(b, n)
        ta.append(x)
        tb.append(y)
        ratios.append(y / x)
    return {"a_us": statistics.median(ta) * 1e6, "b_us": statistics.median(tb) * 1e6,
            "ratio_b_over_a": statistics.median(ratios)}


class _NoWatchdog:
    """The variant without the whole-call deadline."""

    expired = False

    def __init__(self, *_args: object) -> None:
        pass

    def __enter__(self) -> _NoWatchdog:
        return self

    def __exit__(self, *_args: object) -> None:
        return None


def pki(directory: Path) -> tuple[Issuer, x509.Certificate, x509.Certificate, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = self_signed_root(key=root_key, subject=ca_name("Bench Root"), serial=1,
                            not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = intermediate(Issuer.of(root, root_key), public_key=ca_key.public_key(), subject=ca_name("Bench CA"),
                      serial=2, not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=1))
    issuer = Issuer.of(ca, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    exts = [x509.Extension(x509.ExtendedKeyUsage.oid, False, x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])),
            x509.Extension(x509.SubjectAlternativeName.oid, False,
                           x509.SubjectAlternativeName([x509.DNSName("localhost")]))]
    leaf = sign_certificate(issuer, subject=ca_name("localhost"), public_key=key.public_key(), serial=3,
                            not_before=now - dt.timedelta(minutes=5), not_after=now + dt.timedelta(hours=2),
                            extensions=exts)
    server_pem, root_pem = directory / "server.pem", directory / "root.pem"
    server_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
                           + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return issuer, root, ca, server_pem, root_pem


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    out: dict[str, object] = {"python": platform.python_version(), "n": args.n, "rounds": args.rounds}

    with child_server() as port:
        url = f"http://127.0.0.1:{port}/hook"

        def with_watchdog() -> object:
            return bounded_post.post(url, b"{}", {}, timeout=5)

        real = bounded_post.Watchdog

        def without_watchdog() -> object:
            bounded_post.Watchdog = _NoWatchdog  # type: ignore[assignment, misc]
            try:
                return bounded_post.post(url, b"{}", {}, timeout=5)
            finally:
                bounded_post.Watchdog = real  # type: ignore[misc]

        with_watchdog()
        r = alternate(without_watchdog, with_watchdog, args.n, args.rounds)
        out["watchdog"] = {"without_us": round(r["a_us"], 1), "with_us": round(r["b_us"], 1),
                           "ratio_with_over_without": round(r["ratio_b_over_a"], 3)}

    with tempfile.TemporaryDirectory() as tmp:
        issuer, root, ca, server_pem, root_pem = pki(Path(tmp))
        clock = SystemClock()
        root_cadata = root.public_bytes(serialization.Encoding.PEM).decode()

        def tls_context() -> ssl.SSLContext:  # as WebhookClient makes one: system roots and the CA's
            context = ssl.create_default_context()
            context.load_verify_locations(cadata=root_cadata)
            return context

        identity = issuing_identity(issuer, [ca], common_name="bench ca", names=["ca.bench"], clock=clock)
        with child_server(str(server_pem), str(root_pem)) as port:
            url = f"https://localhost:{port}/hook"
            base = {"name": "h", "url": url, "kind": "ENRICHING", "secret": "MDEyMzQ1Njc4OWFiY2RlZi1iZW5jaA=="}
            shown = load_one("p", base, 0)
            hidden = load_one("p", {**base, "disableTLSClientAuth": True}, 0)
            client = WebhookClient(roots=[root], identity=identity)
            client.call(shown, url, b"{}")
            client.call(hidden, url, b"{}")
            r = alternate(lambda: client.call(hidden, url, b"{}"), lambda: client.call(shown, url, b"{}"),
                          args.n, args.rounds)
            out["client_cert"] = {"disabled_us": round(r["a_us"], 1), "presented_us": round(r["b_us"], 1),
                                  "ratio_presented_over_disabled": round(r["ratio_b_over_a"], 3)}

        def first_use() -> float:
            fresh = issuing_identity(issuer, [ca], common_name="bench ca", names=["ca.bench"], clock=clock)
            start = time.process_time()
            fresh.context(tls_context)
            return time.process_time() - start

        makes = [first_use() for _ in range(min(args.n, 100))]
        out["identity_first_use_ms"] = round(statistics.median(makes) * 1e3, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
