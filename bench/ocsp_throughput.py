"""OCSP responses per second from a warm responder, with and without pre-signed responses.

Method: one P-256 CA, 2,000 issued leaves (10% revoked), one published CRL in
a local blob folder. The load client is the same for both modes: a fixed
list of 2,000 DER requests (SHA-1 CertIDs, no nonce) replayed round-robin.
The responder is warmed first (CRL loaded, and in pre-signed mode every
response signed once), then measured two ways:

- `in_process`: `OCSPEndpoint.handle_ocsp("POST", ...)` called in a loop on
  one thread (the responder's own cost, what a Cloud Function instance pays
  per request besides the framework);
- `http`: a threaded Werkzeug server on loopback (HTTP/1.1 keep-alive) and
  `--clients` client threads in the same process posting requests.

Usage: python bench/ocsp_throughput.py [--seconds 3] [--clients 4] > result.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from shared.httpserver import WSGIServer
from tests.unit.validation.va_pki import World

N_LEAVES = 2000


def _setup(tmp: Path, presign: bool) -> tuple[World, list[bytes]]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    world = World(tmp, now=now, presign=presign)
    requests = []
    for i in range(N_LEAVES):
        leaf = world.issue()
        if i % 10 == 0:
            world.revoke(leaf, 1)
        req = ocsp.OCSPRequestBuilder().add_certificate(leaf, world.chain.ca, hashes.SHA1())
        requests.append(req.build().public_bytes(serialization.Encoding.DER))
    world.publisher.publish()
    for body in requests:  # warm: CRL parsed, and pre-signed responses made when enabled
        world.http.handle_ocsp("POST", "", body)
    return world, requests


def _in_process(world: World, requests: list[bytes], seconds: float) -> float:
    done, i, n = 0, 0, len(requests)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            world.http.handle_ocsp("POST", "", requests[i % n])
            i += 1
        done += 100
    return done / seconds


def _http(world: World, requests: list[bytes], seconds: float, clients: int) -> float:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        status, headers, body = world.http.handle_ocsp(
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", "")[5:],
            environ["wsgi.input"].read(size),
        )
        start_response(f"{status} OK", list(headers.items()))
        return [body]

    # The server `cirrus up` runs (HTTP/1.1 keep-alive; Werkzeug's dev server closes every connection).
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = WSGIServer(sock, app, None)
    server.server_port = sock.getsockname()[1]  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port)
        i = k
        while time.perf_counter() < stop:
            conn.request("POST", "/ocsp", requests[i % len(requests)], {"Content-Type": "application/ocsp-request"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            counts[k] += 1
            i += clients
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.shutdown()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    results = {}
    for presign in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            world, requests = _setup(Path(tmp), presign)
            results["presigned" if presign else "signed_per_request"] = {
                "in_process_per_s": round(_in_process(world, requests, args.seconds)),
                "http_per_s": round(_http(world, requests, args.seconds, args.clients)),
            }
    print(
        json.dumps(
            {
                "benchmark": "ocsp_throughput",
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "leaves": N_LEAVES,
                "seconds_per_measure": args.seconds,
                "http_clients": args.clients,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
