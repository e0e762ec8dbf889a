"""Relying parties against the validation authority: openssl verify/ocsp and pkilint.

A real chain is built with cryptography, CRLs are published to a real blob
folder, and the OCSP responder and CRL handler are served by a real loopback
HTTP server (wsgiref) that `openssl ocsp` talks to. Times are the wall clock,
because openssl checks CRL and OCSP validity against it.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.validation.ocsp_http import CRLEndpoint
from tests.helpers import pkilint_cli_errors
from tests.unit.validation.va_pki import World, pem

pytestmark = pytest.mark.interop


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[World, str]]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    world = World(tmp_path, now=now)
    crls = CRLEndpoint(blobs=world.blobs, clock=world.clock, default_authority_id="intermediate")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        if path.startswith("/ocsp"):
            status, headers, out = world.http.handle_ocsp(method, path[5:], body)
        elif path.startswith("/crl"):
            status, headers, out = crls.handle_crl(
                method, path[4:], environ.get("QUERY_STRING", "")
            )
        else:
            status, headers, out = 404, {"Content-Type": "text/plain"}, b"not found\n"
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
        start_response(f"{status} {reason}", list(headers.items()))
        return [out]

    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield world, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=60)


def test_openssl_verify_crl_check_and_ocsp(served: tuple[World, str], tmp_path: Path) -> None:
    world, base = served
    good, revoked = world.issue(), world.issue()
    never_issued = world.chain.leaf(now=world.now)
    world.revoke(revoked, 1)  # keyCompromise
    world.publisher.publish()
    paths = world.chain.write_pem(tmp_path)
    for name, cert in (("good", good), ("revoked", revoked), ("unknown", never_issued)):
        (tmp_path / f"{name}.pem").write_bytes(pem(cert))

    # the CRL as relying parties fetch it: over HTTP from the /crl handler
    with urllib.request.urlopen(f"{base}/crl?pem") as resp:
        assert resp.headers["Content-Type"] == "application/x-pem-file"
        (tmp_path / "crl.pem").write_bytes(resp.read())
    with urllib.request.urlopen(f"{base}/crl") as resp:
        assert resp.headers["Content-Type"] == "application/pkix-crl"
        x509.load_der_x509_crl(resp.read())

    def verify(name: str) -> subprocess.CompletedProcess[str]:
        return _run(
            "openssl",
            "verify",
            "-crl_check",
            "-CAfile",
            str(paths["root"]),
            "-untrusted",
            str(paths["ca"]),
            "-CRLfile",
            str(tmp_path / "crl.pem"),
            str(tmp_path / f"{name}.pem"),
        )

    ok = verify("good")
    assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout + ok.stderr
    bad = verify("revoked")
    assert bad.returncode != 0 and "certificate revoked" in bad.stdout + bad.stderr
    (tmp_path / "crl.der").write_bytes(world.blobs.read("crl/intermediate.crl").data)  # type: ignore[union-attr]
    signed = _run(
        "openssl",
        "crl",
        "-inform",
        "DER",
        "-in",
        str(tmp_path / "crl.der"),
        "-noout",
        "-CAfile",
        str(paths["ca"]),
        "-verify",
    )
    assert "verify OK" in signed.stdout + signed.stderr

    def ask(name: str) -> str:
        res = _run(
            "openssl",
            "ocsp",
            "-issuer",
            str(paths["ca"]),
            "-cert",
            str(tmp_path / f"{name}.pem"),
            "-url",
            f"{base}/ocsp",
            "-CAfile",
            str(paths["chain"]),
            "-respout",
            str(tmp_path / f"{name}.ocsp"),
        )
        assert "Response verify OK" in res.stdout + res.stderr, res.stdout + res.stderr
        return res.stdout

    out = ask("good")
    assert re.search(r"good\.pem: good", out), out
    out = ask("revoked")
    assert re.search(r"revoked\.pem: revoked", out), out
    assert "Reason: keyCompromise" in out
    rev_time = (world.now - dt.timedelta(minutes=5)).strftime("%b %e %H:%M:%S %Y GMT")
    assert f"Revocation Time: {rev_time}" in out, out
    out = ask("unknown")
    assert re.search(r"unknown\.pem: unknown", out), out

    # pkilint finds no ERROR in the responses openssl received, nor in the CRL
    for name in ("good", "revoked", "unknown"):
        assert _lint_ocsp(tmp_path / f"{name}.ocsp") == [], name
    assert pkilint_cli_errors(["lint_crl", "lint", "-t", "CRL", "-p", "BR"], tmp_path / "crl.der") == []


def test_openssl_with_partitioned_crl(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    world = World(tmp_path, shards=4, now=now)
    leaves = [world.issue() for _ in range(8)]
    world.revoke(leaves[0], 4)
    world.publisher.publish()
    paths = world.chain.write_pem(tmp_path)
    for i, leaf in enumerate(leaves):
        cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        uri = cdp[0].full_name[0].value  # type: ignore[index]
        name = uri.split("/crl/", 1)[1]
        blob = world.blobs.read("crl/" + name)
        assert blob is not None
        crl = x509.load_der_x509_crl(blob.data)
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical and idp.value.full_name[0].value == uri  # type: ignore[index]
        (tmp_path / "shard.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "leaf.pem").write_bytes(pem(leaf))
        res = _run(
            "openssl",
            "verify",
            "-crl_check",
            "-CAfile",
            str(paths["root"]),
            "-untrusted",
            str(paths["ca"]),
            "-CRLfile",
            str(tmp_path / "shard.pem"),
            str(tmp_path / "leaf.pem"),
        )
        if i == 0:
            assert "certificate revoked" in res.stdout + res.stderr
        else:
            assert res.returncode == 0, res.stdout + res.stderr
        (tmp_path / "shard.der").write_bytes(blob.data)
        assert pkilint_cli_errors(["lint_crl", "lint", "-t", "CRL", "-p", "BR"], tmp_path / "shard.der") == []


def _lint_ocsp(path: Path) -> list[dict[str, object]]:
    return pkilint_cli_errors(["lint_ocsp_response", "lint"], path)
