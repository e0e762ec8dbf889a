"""The README's shell session, for real: `cirrus up` over TLS, the client commands, openssl.

Starts `cirrus up` as a subprocess on a free loopback port, then drives it with the `cirrus`
client commands (mTLS and Bearer renewal, token and mTLS revocation) and checks the issued
certificate with `openssl verify`; finally SIGTERM must stop the server cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.events.base import CERTIFICATE_ISSUED, CERTIFICATE_RENEWED
from tests.helpers import make_csr, mint_sign_token, pkilint_errors

pytestmark = pytest.mark.interop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cirrus(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


@pytest.fixture
def server(authority_dir: Path, tmp_path: Path):
    port = free_port()
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["address"] = f"127.0.0.1:{port}"
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--dir", str(authority_dir), "--workers", "2"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if cirrus("health", "--dir", str(authority_dir), check=False).returncode == 0:
            break
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        time.sleep(0.2)
    yield proc, tmp_path / "server.log"
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def openssl_verify(authority_dir: Path, cert: Path) -> None:
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(authority_dir / "certs" / "root_ca.crt"),
         "-untrusted", str(authority_dir / "certs" / "intermediate_ca.crt"), str(cert)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0 and ": OK" in out.stdout, out.stderr


def leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_readme_session(server, authority_dir: Path, tmp_path: Path) -> None:
    proc, log_path = server
    d = str(authority_dir)
    crt, key = tmp_path / "svc.crt", tmp_path / "svc.key"
    cirrus("certificate", "svc.example.internal", str(crt), str(key), "--dir", d,
           "--san", "svc.example.internal", "--san", "10.1.2.3")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    openssl_verify(authority_dir, crt)
    first = leaf(crt)
    assert pkilint_errors(first.public_bytes(serialization.Encoding.DER)) == []

    cirrus("renew", str(crt), str(key), "--dir", d)  # mTLS through the real TLS stack
    second = leaf(crt)
    assert second.serial_number != first.serial_number
    openssl_verify(authority_dir, crt)
    cirrus("renew", str(crt), str(key), "--dir", d, "--bearer")
    third = leaf(crt)
    assert third.serial_number not in (first.serial_number, second.serial_number)

    # Revoke the first by token, the third with its own certificate over mTLS.
    # Serials print in decimal everywhere (as step prints them), whichever form revoke was given.
    done = cirrus("revoke", str(first.serial_number), "--dir", d, "--reason-code", "4")
    assert done.stdout == f"Revoked certificate {first.serial_number}\n"
    done = cirrus("revoke", hex(third.serial_number), "--dir", d, "--cert", str(crt), "--cert-key", str(key))
    assert done.stdout == f"Revoked certificate {third.serial_number}\n"
    again = cirrus("revoke", str(first.serial_number), "--dir", d, check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr
    refused = cirrus("renew", str(crt), str(key), "--dir", d, "--bearer", check=False)
    assert refused.returncode == 1 and "revoked" in refused.stderr

    listing = json.loads(cirrus("endpoints", "list", "--dir", d, "--json").stdout)
    assert len(listing) == 1
    shown = json.loads(cirrus("endpoints", "show", listing[0]["id"], "--dir", d, "--json").stdout)
    assert [c["serial"] for c in shown["certificates"]] == [str(c.serial_number) for c in (first, second, third)]
    assert [c["status"] for c in shown["certificates"]] == ["revoked", "active", "revoked"]
    assert shown["certificates"][1]["renewedFrom"] == str(first.serial_number)
    table = cirrus("endpoints", "show", listing[0]["id"], "--dir", d).stdout
    assert str(second.serial_number) in table

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    lines = log_path.read_text().splitlines()
    assert any("root fingerprint" in line for line in lines)
    assert any(line.startswith("Try: cirrus certificate") for line in lines)
    access = [json.loads(line) for line in lines if line.startswith("{") and '"requestId"' in line]
    assert {"/1.0/sign", "/1.0/renew", "/1.0/revoke", "/health"} <= {a["path"] for a in access}
    assert all(len(a["requestId"]) >= 16 for a in access)
    events = [json.loads(line) for line in lines if line.startswith("{") and '"specversion"' in line]
    assert {CERTIFICATE_ISSUED, CERTIFICATE_RENEWED} <= {e["type"] for e in events}  # written by the workers


def test_client_errors_are_clear(authority_dir: Path) -> None:
    port = free_port()
    out = cirrus("health", "--ca-url", f"https://127.0.0.1:{port}", "--dir", str(authority_dir), check=False)
    assert out.returncode == 1 and "cannot reach the CA" in out.stderr and "Traceback" not in out.stderr


def test_init_refuses_to_overwrite(authority_dir: Path) -> None:
    out = cirrus("init", "--dir", str(authority_dir), check=False)
    assert out.returncode == 1 and "refusing to overwrite" in out.stderr and out.stdout == ""


def test_server_answers_with_its_own_certificate_and_asks_for_client_certs(server, authority_dir: Path) -> None:
    import ssl

    port = int(json.loads((authority_dir / "config.json").read_text())["address"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(authority_dir / "certs" / "root_ca.crt"))
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    assert cert.issuer == x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes()).subject
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() <= 24 * 3600 + 120


def test_revocation_reaches_ocsp_and_crl(server, authority_dir: Path, tmp_path: Path) -> None:
    """Revoke through the API; the in-process schedule republishes the CRL, OCSP answers from it."""
    import ssl
    import urllib.request

    d = str(authority_dir)
    port = int(json.loads((authority_dir / "config.json").read_text())["address"].rsplit(":", 1)[1])
    crt, key = tmp_path / "o.crt", tmp_path / "o.key"
    cirrus("certificate", "ocsp.example.internal", str(crt), str(key), "--dir", d)
    good_crt, good_key = tmp_path / "g.crt", tmp_path / "g.key"
    cirrus("certificate", "good.example.internal", str(good_crt), str(good_key), "--dir", d)
    leaf_only = tmp_path / "leaf.pem"
    leaf_only.write_bytes(leaf(crt).public_bytes(serialization.Encoding.PEM))
    good_only = tmp_path / "good.pem"
    good_only.write_bytes(leaf(good_crt).public_bytes(serialization.Encoding.PEM))
    cirrus("revoke", str(leaf(crt).serial_number), "--dir", d, "--reason-code", "1")
    root, inter = authority_dir / "certs" / "root_ca.crt", authority_dir / "certs" / "intermediate_ca.crt"

    ctx = ssl.create_default_context(cafile=str(root))
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        # openssl ocsp speaks plain HTTP only: build the request with it, send it over HTTPS.
        req = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(inter), "-cert", str(leaf_only), "-reqout", str(tmp_path / "req.der"), "-no_nonce"],
            capture_output=True, text=True,
        )
        assert req.returncode == 0, req.stderr
        http = urllib.request.Request(
            f"https://127.0.0.1:{port}/ocsp", data=(tmp_path / "req.der").read_bytes(),
            headers={"Content-Type": "application/ocsp-request"},
        )
        with urllib.request.urlopen(http, context=ctx, timeout=10) as resp:
            (tmp_path / "resp.der").write_bytes(resp.read())
        out = subprocess.run(
            ["openssl", "ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(inter), "-cert", str(leaf_only),
             "-CAfile", str(root), "-no_nonce"],
            capture_output=True, text=True,
        )
        status = out.stdout + out.stderr
        if "revoked" in status.lower():
            break
        time.sleep(1)
    assert "Response verify OK" in status and ": revoked" in status and "keyCompromise" in status, status

    with urllib.request.urlopen(f"https://127.0.0.1:{port}/crl", context=ctx, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/pkix-crl"
        (tmp_path / "ca.crl").write_bytes(resp.read())
    subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "ca.crl"), "-out", str(tmp_path / "ca.crl.pem")], check=True)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(root.read_bytes() + inter.read_bytes())
    revoked = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", str(bundle), "-CRLfile", str(tmp_path / "ca.crl.pem"), str(leaf_only)],
        capture_output=True, text=True,
    )
    assert revoked.returncode != 0 and "revoked" in (revoked.stdout + revoked.stderr)
    fine = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", str(bundle), "-CRLfile", str(tmp_path / "ca.crl.pem"), str(good_only)],
        capture_output=True, text=True,
    )
    assert fine.returncode == 0, fine.stdout + fine.stderr


def test_workers_die_with_a_killed_master(server) -> None:
    """SIGKILL on `cirrus up` leaves no worker behind holding the port."""
    proc, _ = server
    children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(children) == 3  # two workers and the background process
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2] for c in children):
        time.sleep(0.1)
    alive = [c for c in children if Path(f"/proc/{c}").exists() and Path(f"/proc/{c}/stat").read_text().split()[2] != "Z"]
    assert alive == []


def test_concurrent_signs_use_each_token_once(server, authority_dir: Path) -> None:
    """Concurrent keep-alive clients, a third of the requests replaying a token: whether a replay
    meets its original in the same shared commit (group commit) or later, exactly one use wins."""
    import http.client
    import random
    import sqlite3
    import ssl
    import threading

    port = int(json.loads((authority_dir / "config.json").read_text())["address"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(authority_dir / "certs" / "root_ca.crt"))
    csr, _ = make_csr("load.example.com", ["load.example.com"])
    tokens = [mint_sign_token(authority_dir, "load.example.com", ["load.example.com"]) for _ in range(24)]
    bodies = [json.dumps({"csr": csr, "ott": t}) for t in tokens + tokens[:12]]
    random.Random(7).shuffle(bodies)
    results: list[tuple[int, dict[str, object]]] = []
    lock = threading.Lock()

    def client(chunk: list[str]) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        try:
            for body in chunk:
                conn.request("POST", "/1.0/sign", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                answer = (resp.status, json.loads(resp.read()))
                with lock:
                    results.append(answer)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(bodies[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 24 + [401] * 12, statuses
    serials = {
        str(x509.load_pem_x509_certificate(str(body["crt"]).encode()).serial_number)
        for status, body in results
        if status == 201
    }
    assert len(serials) == 24
    db = sqlite3.connect(f"file:{authority_dir / 'db' / 'cirrus.db'}?mode=ro", uri=True)
    try:
        recorded = {r[0] for r in db.execute("SELECT serial FROM certificates WHERE common_name = 'load.example.com'")}
    finally:
        db.close()
    assert recorded == serials  # every certificate handed out is recorded, and only those


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _workers(master: int, port: int) -> set[int]:
    """The master's children holding the listening socket (the background process does not)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[1].endswith(f":{port:04X}") and cols[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    found = set()
    for child in _children(master):
        try:
            fds = os.listdir(f"/proc/{child}/fd")
        except OSError:
            continue  # the child is gone
        links = set()
        for fd in fds:
            # A worker under load closes connection descriptors all the time: one that closed since
            # the listing is skipped, not taken for the whole worker missing (that made this flaky).
            try:
                links.add(os.readlink(f"/proc/{child}/fd/{fd}"))
            except OSError:
                continue
        if links & inodes:
            found.add(child)
    return found


def test_a_killed_worker_is_replaced_and_the_service_goes_on(server, authority_dir: Path) -> None:
    """SIGKILL one worker, then the other, under load: the master starts new ones and clients keep being
    served (today the first death shut the whole service down)."""
    import http.client
    import ssl
    import threading

    proc, log_path = server
    port = int(json.loads((authority_dir / "config.json").read_text())["address"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(authority_dir / "certs" / "root_ca.crt"))
    results: list[tuple[float, bool]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            ok = False
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
                conn.request("GET", "/health")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                pass
            results.append((time.monotonic(), ok))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        original = _workers(proc.pid, port)
        assert len(original) == 2
        assert os.listdir(f"/proc/{proc.pid}/task") == [str(proc.pid)]  # no threads: forking a worker is safe
        for victim in sorted(original):
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            deadline = killed + 20
            workers: set[int] = set()
            while time.monotonic() < deadline:
                workers = _workers(proc.pid, port) - {victim}
                if len(workers) >= 2:
                    break
                time.sleep(0.1)
            assert len(workers) == 2, log_path.read_text()[-3000:]
            time.sleep(max(0.0, killed + 2.5 - time.monotonic()))
            assert proc.poll() is None
            after = [ok for t, ok in results if t > killed + 1.0]
            assert len(after) >= 5 and all(after[-5:]), log_path.read_text()[-3000:]
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not (_workers(proc.pid, port) & original)
    assert log_path.read_text().count("starting a new one") == 2


def test_the_front_refuses_at_once_what_it_cannot_serve(server, authority_dir: Path) -> None:
    """Over TLS against the real app: an HTTP/0.9 line and a body over `max_body_bytes` get a 4xx at once,
    before any body is sent (today: a hang until the client gives up)."""
    import ssl

    port = int(json.loads((authority_dir / "config.json").read_text())["address"].rsplit(":", 1)[1])
    ctx = ssl.create_default_context(cafile=str(authority_dir / "certs" / "root_ca.crt"))
    for request, status in [
        (b"GET /health\r\n", b"400"),
        (b"POST /1.0/sign HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n", b"413"),
    ]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(
            raw, server_hostname="localhost"
        ) as c:
            c.sendall(request)
            out = b""
            while data := c.recv(65536):
                out += data
        assert out.split(b"\r\n", 1)[0].split(b" ")[1] == status, out


def test_up_init_with_an_address_records_it_for_the_cli(tmp_path: Path) -> None:
    """`cirrus up --dir D --init --address A`: the CLI's commands with `--dir D` reach the server at A."""
    port = free_port()
    directory = tmp_path / "ca"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--dir", str(directory), "--init", "--address",
         f"127.0.0.1:{port}", "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if cirrus("health", "--dir", str(directory), check=False).returncode == 0:
                break
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        assert json.loads((directory / "config.json").read_text())["address"] == f"127.0.0.1:{port}"
        assert "--ca-url" not in (tmp_path / "server.log").read_text()  # the config already names it
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
