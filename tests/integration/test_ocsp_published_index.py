"""OCSP through the real app answers from what the VA published, checked with `cirrus ocsp check`.

An authority made by `cirrus init` (SQLite store, blob folder) issues through
`POST /1.0/sign`; `run_publish` publishes the CRL and the serial index; the
app is served on loopback and `cirrus ocsp check` asks it and verifies the
signed answers. A certificate is `good` only once the index lists it, a serial
that was never issued is `unknown`, and a revocation shows after republishing.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main
from shared.cli.crl import run_publish
from shared.clock import FixedClock
from shared.config import Settings
from shared.runtime import Services, build_services
from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims


@pytest.fixture
def served(authority_dir: Path) -> Iterator[tuple[Services, Client, str, FixedClock]]:
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    services = build_services(Settings.load(authority_dir / "config.json"), clock=clock)
    app = CirrusApp(services, mounts=default_mounts(services))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield services, Client(app), f"http://127.0.0.1:{server.port}/ocsp", clock
    finally:
        server.shutdown()
        services.close()


def _issue(api: Client, authority_dir: Path, name: str, tmp_path: Path) -> tuple[x509.Certificate, Path]:
    csr, _ = make_csr(name)
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name)})
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    path = tmp_path / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, path


def _never_issued(authority_dir: Path, tmp_path: Path) -> Path:
    """A certificate naming the CA as issuer with a serial the CA never used."""
    ca = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "forged")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number((1 << 150) | secrets.randbits(150))
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "forged.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _check(capsys: pytest.CaptureFixture[str], cert: Path, url: str, authority_dir: Path, *extra: str) -> tuple[int, str]:
    code = main(["ocsp", "check", str(cert), "--url", url, "--dir", str(authority_dir), *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_good_unknown_revoked_from_the_published_index(
    served: tuple[Services, Client, str, FixedClock], authority_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    services, api, url, clock = served
    first, first_path = _issue(api, authority_dir, "one.example.internal", tmp_path)
    run_publish(services)
    code, out = _check(capsys, first_path, url, authority_dir)
    assert code == 0 and f"{first.serial_number}: good" in out, out

    # issued after the publication: not in the index yet, so unknown (the store is not asked)
    second, second_path = _issue(api, authority_dir, "two.example.internal", tmp_path)
    code, out = _check(capsys, second_path, url, authority_dir, "--no-nonce", "--hash", "sha256")
    assert code == 2 and ": unknown" in out, out
    run_publish(services)
    clock.advance(dt.timedelta(seconds=6))  # past the responder's recheck of a local folder
    code, out = _check(capsys, second_path, url, authority_dir)
    assert code == 0 and ": good" in out, out

    # a serial the CA never issued is unknown, never good
    code, out = _check(capsys, _never_issued(authority_dir, tmp_path), url, authority_dir)
    assert code == 2 and ": unknown" in out, out

    # revoke -> republish -> revoked with time and reason
    serial = str(first.serial_number)
    tok = mint_token(authority_dir, sign_claims(serial, None, op="revoke"))
    r = api.post("/1.0/revoke", json={"serial": serial, "ott": tok, "passive": True, "reasonCode": 1})
    assert r.status_code == 200, r.text
    run_publish(services)
    clock.advance(dt.timedelta(seconds=6))
    code, out = _check(capsys, first_path, url, authority_dir, "--no-nonce")
    assert code == 1 and "revoked at" in out and "keyCompromise" in out, out
    # the other certificate stays good
    assert _check(capsys, second_path, url, authority_dir)[0] == 0


def test_check_refuses_an_answer_it_cannot_trust(
    served: tuple[Services, Client, str, FixedClock], authority_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    services, api, url, _ = served
    _, path = _issue(api, authority_dir, "three.example.internal", tmp_path)
    run_publish(services)
    # a different "issuer" (the root): the responder does not serve it -> error status, exit 3
    code, out = _check(capsys, path, url, authority_dir, "--issuer", str(authority_dir / "certs" / "root_ca.crt"))
    assert code == 3 and "UNAUTHORIZED" in out, out
    code, out = _check(capsys, path, "http://127.0.0.1:1/ocsp", authority_dir)
    assert code == 3 and "cannot reach" in out, out
