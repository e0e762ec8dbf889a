"""Registration authority mode (issue 16 item 5): an RA Cirrus in front of an upstream `cirrus up`.

The upstream is a real `cirrus up` over TLS (its own authority made by `cirrus init`); the RA
is a second authority with its own `admin` JWK provisioner, no signing key, and an `"ra"` block
whose credential is the upstream's `admin` private JWK. The RA is driven in-process through its
WSGI app; every upstream call is real HTTPS pinned to the upstream root.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.init import init_authority
from shared.config import Settings
from shared.errors import ConfigError
from shared.events.base import CERTIFICATE_ISSUED, CERTIFICATE_REVOKED, ENDPOINT_CREATED
from shared.ra import check_upstream_certificate
from shared.runtime import Services, build_services
from shared.x509.names import split_sans
from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims
from tests.interop.test_cli_session import server  # noqa: F401 - the upstream `cirrus up` fixture

pytestmark = pytest.mark.interop


@pytest.fixture
def upstream_url(server, authority_dir: Path) -> str:  # noqa: F811 - the imported fixture
    return "https://" + json.loads((authority_dir / "config.json").read_text())["address"]


def _ra_dir(upstream_dir: Path, tmp_path: Path, url: str, **ra: object) -> Path:
    d = tmp_path / "ra"
    init_authority(d, name="RA", p2c=1000)
    shutil.copy(upstream_dir / "certs" / "root_ca.crt", d / "certs" / "root_ca.crt")
    shutil.copy(upstream_dir / "certs" / "intermediate_ca.crt", d / "certs" / "intermediate_ca.crt")
    cred = d / "secrets" / "upstream.jwk"
    shutil.copy(upstream_dir / "secrets" / "provisioner.jwk", cred)
    cred.chmod(0o600)
    cfg = json.loads((d / "config.json").read_text())
    del cfg["key"]
    cfg["crl"]["enabled"] = False  # the upstream's CRLs cover what it signs
    cfg["ra"] = {"upstream": url, "provisioner": "admin", "key": "secrets/upstream.jwk", **ra}
    (d / "config.json").write_text(json.dumps(cfg))
    return d


@pytest.fixture
def ra(authority_dir: Path, tmp_path: Path, upstream_url: str) -> Iterator[tuple[Path, Services, Client]]:
    d = _ra_dir(authority_dir, tmp_path, upstream_url)
    services = build_services(Settings.load(d / "config.json"))
    yield d, services, Client(CirrusApp(services, mounts=default_mounts(services)))
    services.close()


def _count(services: Services, etype: str) -> int:
    return sum(1 for e in services.store.list_events(limit=1000) if e.type == etype)


def _upstream_services(authority_dir: Path) -> Services:
    return build_services(Settings.load(authority_dir / "config.json"))


def test_ra_certificate_is_issued_upstream_recorded_here_and_verifies(
    ra: tuple[Path, Services, Client], authority_dir: Path, tmp_path: Path
) -> None:
    ra_dir, services, client = ra
    csr, _ = make_csr("svc.example.com", ["svc.example.com", "alt.example.com"])
    token = mint_sign_token(ra_dir, "svc.example.com", ["svc.example.com", "alt.example.com"])
    resp = client.post("/1.0/sign", json={"csr": csr, "ott": token})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    leaf = x509.load_pem_x509_certificate(body["crt"].encode())
    upstream_intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    assert leaf.issuer == upstream_intermediate.subject
    assert x509.load_pem_x509_certificate(body["ca"].encode()) == upstream_intermediate
    # Recorded at the RA, with its endpoint and events.
    record = services.store.get_certificate(str(leaf.serial_number))
    assert record is not None and record.common_name == "svc.example.com"
    assert set(record.sans) == {"svc.example.com", "alt.example.com"}
    assert services.store.get_endpoint(record.endpoint_id) is not None
    assert _count(services, CERTIFICATE_ISSUED) == 1 and _count(services, ENDPOINT_CREATED) == 1
    # Upstream issued it under its own `admin` provisioner (the RA's credential there).
    up = _upstream_services(authority_dir)
    try:
        up_record = up.store.get_certificate(str(leaf.serial_number))
        assert up_record is not None and up_record.provisioner.name == "admin"
    finally:
        up.close()
    (tmp_path / "leaf.pem").write_text(body["crt"])
    (tmp_path / "chain.pem").write_text(body["ca"])
    out = subprocess.run(
        ["openssl", "verify", "-CAfile", str(authority_dir / "certs" / "root_ca.crt"),
         "-untrusted", str(tmp_path / "chain.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, text=True,
    )
    assert out.returncode == 0 and ": OK" in out.stdout, out.stderr


def test_ra_refusal_never_reaches_upstream(ra: tuple[Path, Services, Client], authority_dir: Path) -> None:
    ra_dir, services, client = ra
    up = _upstream_services(authority_dir)
    try:
        before = _count(up, CERTIFICATE_ISSUED)
        csr, _ = make_csr("svc.example.com", ["svc.example.com", "evil.example.com"])
        # The token authorizes one name, the CSR asks for two: the RA's own CSR check refuses.
        token = mint_sign_token(ra_dir, "svc.example.com", ["svc.example.com"])
        resp = client.post("/1.0/sign", json={"csr": csr, "ott": token})
        assert resp.status_code == 403, resp.get_data(as_text=True)
        # A token made with the upstream's key (not the RA's provisioner) is not the RA's to accept.
        csr, _ = make_csr("svc.example.com", ["svc.example.com"])
        foreign = mint_token(authority_dir, sign_claims("svc.example.com", ["svc.example.com"]))
        resp = client.post("/1.0/sign", json={"csr": csr, "ott": foreign})
        assert resp.status_code == 401, resp.get_data(as_text=True)
        assert _count(up, CERTIFICATE_ISSUED) == before
        assert _count(services, CERTIFICATE_ISSUED) == 0
    finally:
        up.close()


def test_upstream_down_is_503_and_nothing_recorded(
    ra: tuple[Path, Services, Client], server  # noqa: F811 - the imported fixture
) -> None:
    ra_dir, services, client = ra
    proc, _ = server
    proc.terminate()
    proc.wait(timeout=60)  # a graceful stop under a loaded machine
    csr, _ = make_csr("svc.example.com", ["svc.example.com"])
    token = mint_sign_token(ra_dir, "svc.example.com", ["svc.example.com"])
    resp = client.post("/1.0/sign", json={"csr": csr, "ott": token})
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert "upstream" in resp.get_json()["message"]
    assert _count(services, CERTIFICATE_ISSUED) == 0 and _count(services, ENDPOINT_CREATED) == 0
    # The token was not spent (its claim rides in the record's write): a retry is not a replay refusal.
    resp = client.post("/1.0/sign", json={"csr": csr, "ott": token})
    assert resp.status_code == 503


def test_revoke_at_the_ra_revokes_upstream(ra: tuple[Path, Services, Client], authority_dir: Path) -> None:
    ra_dir, services, client = ra
    csr, _ = make_csr("svc.example.com", ["svc.example.com"])
    resp = client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(ra_dir, "svc.example.com", ["svc.example.com"])})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    serial = str(x509.load_pem_x509_certificate(resp.get_json()["crt"].encode()).serial_number)
    token = mint_token(ra_dir, sign_claims(serial, None, op="revoke"))
    resp = client.post("/1.0/revoke", json={"serial": serial, "ott": token, "reasonCode": 1, "passive": True})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert services.store.get_revocation(serial) is not None
    assert _count(services, CERTIFICATE_REVOKED) == 1
    up = _upstream_services(authority_dir)
    try:
        revocation = up.store.get_revocation(serial)
        assert revocation is not None and revocation.reason_code == 1
    finally:
        up.close()


def test_upstream_certificate_with_other_names_is_refused(
    ra: tuple[Path, Services, Client], authority_dir: Path
) -> None:
    ra_dir, services, client = ra
    csr_pem, _ = make_csr("svc.example.com", ["svc.example.com"])
    resp = client.post("/1.0/sign", json={"csr": csr_pem, "ott": mint_sign_token(ra_dir, "svc.example.com", ["svc.example.com"])})
    leaf = x509.load_pem_x509_certificate(resp.get_json()["crt"].encode())
    chain = [x509.load_pem_x509_certificate(resp.get_json()["ca"].encode())]
    roots = x509.load_pem_x509_certificates((authority_dir / "certs" / "root_ca.crt").read_bytes())
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = services.clock.now()
    check_upstream_certificate(
        leaf, chain, roots=roots, public_key=csr.public_key(), common_name="svc.example.com",
        sans=split_sans(["svc.example.com"]), now=now,
    )
    with pytest.raises(ValueError, match="subject alternative names"):
        check_upstream_certificate(
            leaf, chain, roots=roots, public_key=csr.public_key(), common_name="svc.example.com",
            sans=split_sans(["svc.example.com", "more.example.com"]), now=now,
        )
    other, _ = make_csr("svc.example.com", ["svc.example.com"])
    with pytest.raises(ValueError, match="public key"):
        check_upstream_certificate(
            leaf, chain, roots=roots, public_key=x509.load_pem_x509_csr(other.encode()).public_key(),
            common_name="svc.example.com", sans=split_sans(["svc.example.com"]), now=now,
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other Root")])
    other_root = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(ValueError, match="pinned upstream root"):
        check_upstream_certificate(
            leaf, chain, roots=[other_root], public_key=csr.public_key(), common_name="svc.example.com",
            sans=split_sans(["svc.example.com"]), now=now,
        )


def test_ra_key_readable_by_others_is_a_config_error(
    authority_dir: Path, tmp_path: Path, upstream_url: str
) -> None:
    d = _ra_dir(authority_dir, tmp_path, upstream_url)
    (d / "secrets" / "upstream.jwk").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        build_services(Settings.load(d / "config.json"))


def _mtls(pem: str) -> dict[str, str]:
    return {"SSL_CLIENT_CERT": pem}


def test_rekey_is_a_fresh_upstream_sign_on_the_same_endpoint_and_renew_says_rekey(
    ra: tuple[Path, Services, Client], authority_dir: Path
) -> None:
    ra_dir, services, client = ra
    csr, _ = make_csr("svc.example.com", ["svc.example.com"])
    first = client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(ra_dir, "svc.example.com", ["svc.example.com"])})
    assert first.status_code == 201
    old_pem = first.get_json()["crt"]
    old = services.store.get_certificate(str(x509.load_pem_x509_certificate(old_pem.encode()).serial_number))
    assert old is not None
    new_csr, new_key = make_csr("svc.example.com", ["svc.example.com"])
    resp = client.post("/1.0/rekey", json={"csr": new_csr}, environ_overrides=_mtls(old_pem))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    new = x509.load_pem_x509_certificate(resp.get_json()["crt"].encode())
    assert new.public_key() == new_key.public_key()
    upstream_intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    new.verify_directly_issued_by(upstream_intermediate)
    record = services.store.get_certificate(str(new.serial_number))
    assert record is not None and record.endpoint_id == old.endpoint_id
    assert record.operation == "rekey" and record.renewed_from == old.serial
    # A plain renew cannot be forwarded (upstream needs a CSR signed by the key): a clear 403.
    resp = client.post("/1.0/renew", environ_overrides=_mtls(old_pem))
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert "rekey" in resp.get_json()["message"]


def test_acme_finalize_path_forwards_upstream(ra: tuple[Path, Services, Client], authority_dir: Path) -> None:
    """ACME's finalize calls `issue_for_identifiers` (shared.api.acme_mount); at an RA it signs upstream."""
    _, services, _ = ra
    csr_pem, key = make_csr("web.example.com", ["web.example.com"])
    issued = services.issuing().issue_for_identifiers(
        provisioner_name="acme", csr=x509.load_pem_x509_csr(csr_pem.encode()), names=["web.example.com"]
    )
    upstream_intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    issued.certificate.verify_directly_issued_by(upstream_intermediate)
    assert list(issued.chain) == [upstream_intermediate]
    assert issued.certificate.public_key() == key.public_key()
    record = services.store.get_certificate(issued.record.serial)
    assert record is not None and record.provisioner.name == "acme"


def test_upstream_refusal_is_a_4xx_with_its_message_and_nothing_recorded(
    authority_dir: Path, tmp_path: Path, upstream_url: str
) -> None:
    d = _ra_dir(authority_dir, tmp_path, upstream_url)
    cfg = json.loads((d / "config.json").read_text())
    cfg["authority"]["claims"]["maxTLSCertDuration"] = "48h"  # the RA allows more than the upstream's 24h
    (d / "config.json").write_text(json.dumps(cfg))
    services = build_services(Settings.load(d / "config.json"))
    try:
        client = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr, _ = make_csr("svc.example.com", ["svc.example.com"])
        not_after = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
        token = mint_sign_token(d, "svc.example.com", ["svc.example.com"])
        resp = client.post("/1.0/sign", json={"csr": csr, "ott": token, "notAfter": not_after})
        assert resp.status_code == 403, resp.get_data(as_text=True)
        assert resp.get_json()["message"].startswith("the upstream authority refused the request: ")
        assert "maximum" in resp.get_json()["message"]
        assert _count(services, CERTIFICATE_ISSUED) == 0
    finally:
        services.close()


def test_revoke_with_upstream_down_is_503_and_not_recorded(
    ra: tuple[Path, Services, Client], server  # noqa: F811 - the imported fixture
) -> None:
    ra_dir, services, client = ra
    csr, _ = make_csr("svc.example.com", ["svc.example.com"])
    resp = client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(ra_dir, "svc.example.com", ["svc.example.com"])})
    assert resp.status_code == 201
    pem = resp.get_json()["crt"]
    serial = str(x509.load_pem_x509_certificate(pem.encode()).serial_number)
    proc, _ = server
    proc.terminate()
    proc.wait(timeout=60)  # a graceful stop under a loaded machine
    resp = client.post(
        "/1.0/revoke", json={"serial": serial, "reasonCode": 1, "passive": True}, environ_overrides=_mtls(pem)
    )
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert services.store.get_revocation(serial) is None
    assert _count(services, CERTIFICATE_REVOKED) == 0


def test_cirrus_up_as_ra_gets_its_tls_certificate_upstream_and_signs(
    authority_dir: Path, tmp_path: Path, upstream_url: str
) -> None:
    import signal
    import sys
    import urllib.request

    from tests.interop.test_cli_session import cirrus, free_port

    d = _ra_dir(authority_dir, tmp_path, upstream_url)
    cfg = json.loads((d / "config.json").read_text())
    port = free_port()
    cfg["address"] = f"127.0.0.1:{port}"
    (d / "config.json").write_text(json.dumps(cfg))
    log = (tmp_path / "ra.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "up", "--dir", str(d), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while cirrus("health", "--dir", str(d), check=False).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "ra.log").read_text()
            time.sleep(0.2)
        ctx = ssl.create_default_context(cafile=str(authority_dir / "certs" / "root_ca.crt"))
        csr, _ = make_csr("svc.example.com", ["svc.example.com"])
        body = json.dumps({"csr": csr, "ott": mint_sign_token(d, "svc.example.com", ["svc.example.com"])}).encode()
        req = urllib.request.Request(
            f"https://127.0.0.1:{port}/1.0/sign", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            assert resp.status == 201
            answer = json.loads(resp.read())
        leaf = x509.load_pem_x509_certificate(answer["crt"].encode())
        intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
        leaf.verify_directly_issued_by(intermediate)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    up = _upstream_services(authority_dir)
    try:  # upstream issued two: the RA's own TLS certificate and the client's
        assert _count(up, CERTIFICATE_ISSUED) == 2
    finally:
        up.close()


def test_acme_ip_only_order_through_the_ra(ra: tuple[Path, Services, Client], authority_dir: Path) -> None:
    """No DNS name, so no common name at the RA: the upstream token's subject is the IP address."""
    _, services, _ = ra
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]), False)
        .sign(key, hashes.SHA256())
    )
    issued = services.issuing().issue_for_identifiers(provisioner_name="acme", csr=csr, names=["192.0.2.7"])
    assert issued.certificate.public_key() == key.public_key()
    assert services.store.get_certificate(issued.record.serial) is not None


def _ra_client(d: Path) -> tuple[Services, Client]:
    services = build_services(Settings.load(d / "config.json"))
    return services, Client(CirrusApp(services, mounts=default_mounts(services)))


def _sign(client: Client, d: Path) -> Any:
    csr, _ = make_csr("svc.example.com", ["svc.example.com"])
    return client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(d, "svc.example.com", ["svc.example.com"])})


def test_credential_refused_upstream_is_503_not_the_clients_fault(
    authority_dir: Path, tmp_path: Path, upstream_url: str
) -> None:
    d = _ra_dir(authority_dir, tmp_path, upstream_url)
    # The RA's own provisioner key presented as upstream's `admin`: upstream answers 401.
    shutil.copy(d / "secrets" / "provisioner.jwk", d / "secrets" / "upstream.jwk")
    services, client = _ra_client(d)
    try:
        resp = _sign(client, d)
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert "credential" in resp.get_json()["message"]
        assert _count(services, CERTIFICATE_ISSUED) == 0
    finally:
        services.close()


def test_upstream_that_never_answers_times_out_to_503(authority_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as listener:  # accepts connections (backlog) and never speaks TLS
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        d = _ra_dir(authority_dir, tmp_path, f"https://127.0.0.1:{listener.getsockname()[1]}", timeout=1)
        services, client = _ra_client(d)
        try:
            started = time.monotonic()
            resp = _sign(client, d)
            assert resp.status_code == 503, resp.get_data(as_text=True)
            assert time.monotonic() - started < 10
            assert _count(services, CERTIFICATE_ISSUED) == 0
        finally:
            services.close()


class _Failing(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"status":500,"message":"The certificate authority encountered an Internal Server Error."}'
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_upstream_5xx_is_503_and_nothing_recorded(authority_dir: Path, tmp_path: Path) -> None:
    """A real HTTPS server with a certificate from the upstream's intermediate that answers 500."""
    from shared.server import issue_server_certificate

    up = _upstream_services(authority_dir)
    runtime = tmp_path / "tls"
    runtime.mkdir()
    try:
        cert_path, key_path, _ = issue_server_certificate(up, runtime)
    finally:
        up.close()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        d = _ra_dir(authority_dir, tmp_path, f"https://127.0.0.1:{httpd.server_address[1]}")
        services, client = _ra_client(d)
        try:
            resp = _sign(client, d)
            assert resp.status_code == 503, resp.get_data(as_text=True)
            assert _count(services, CERTIFICATE_ISSUED) == 0 and _count(services, ENDPOINT_CREATED) == 0
        finally:
            services.close()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_ras_provisioner_lifetime_is_what_upstream_issues(
    authority_dir: Path, tmp_path: Path, upstream_url: str
) -> None:
    d = _ra_dir(authority_dir, tmp_path, upstream_url)
    cfg = json.loads((d / "config.json").read_text())
    cfg["authority"]["provisioners"][0]["claims"] = {"defaultTLSCertDuration": "2h"}  # upstream's default: 24h
    (d / "config.json").write_text(json.dumps(cfg))
    services, client = _ra_client(d)
    try:
        resp = _sign(client, d)
        assert resp.status_code == 201, resp.get_data(as_text=True)
        leaf = x509.load_pem_x509_certificate(resp.get_json()["crt"].encode())
        life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert abs(life.total_seconds() - (2 * 3600 + 60)) <= 5  # 2h from now, plus upstream's backdate
    finally:
        services.close()
