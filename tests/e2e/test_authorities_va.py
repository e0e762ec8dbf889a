"""Several issuing authorities in one deployment (issue 16, item 3): CRLs, OCSP and alerts per authority.

Relying parties are real: `openssl crl -verify`, `openssl ocsp` against a served app.
The hierarchy is in multi_authority.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import build_services
from tests.e2e.multi_authority import (
    Deployment,
    crt_of,
    pem,
    sign_and_key,
    token_for,
)
from tests.helpers import make_csr


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(deployment: Deployment) -> Iterator[str]:
    app = CirrusApp(deployment.services, mounts=default_mounts(deployment.services))
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_crls_and_ocsp_per_authority(deployment: Deployment, served: str, tmp_path: Path) -> None:
    from shared.cli.crl import run_publish

    dep = deployment
    leaves: dict[str, dict[str, x509.Certificate]] = {}
    for provisioner, authority in (("admin", "default"), ("teams-admin", "teams"), ("deep-admin", "deep")):
        leaves[authority] = {
            state: sign_and_key(dep, provisioner, f"{state}.{authority}.example.com")[0] for state in ("good", "revoked")
        }
        serial = str(leaves[authority]["revoked"].serial_number)
        ott = token_for(dep, provisioner, serial, op="revoke")
        answer = dep.api.post("/revoke", json={"serial": serial, "ott": ott, "reasonCode": 1, "passive": True})
        assert answer.status_code == 200, answer.text
    run_publish(dep.services)

    ids = {"default": dep.services.settings.authority_id, "teams": "teams", "deep": "deep"}
    for authority, aid in ids.items():
        der = (dep.dir / "published" / "crl" / f"{aid}.crl").read_bytes()
        crl = x509.load_der_x509_crl(der)
        assert crl.issuer == crt_of(dep.issuers[authority]).subject
        assert [r.serial_number for r in crl] == [leaves[authority]["revoked"].serial_number], authority
        (tmp_path / f"{authority}.crl").write_bytes(der)
        trust = tmp_path / f"{authority}-trust.pem"
        trust.write_bytes(dep.chains[authority].read_bytes() + dep.root.read_bytes())
        checked = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / f"{authority}.crl"),
                                  "-noout", "-CAfile", str(trust), "-verify"], capture_output=True, text=True)  # fmt: skip
        assert "verify OK" in checked.stdout + checked.stderr, authority
        for state in ("good", "revoked"):
            leaf = tmp_path / f"{authority}-{state}.pem"
            leaf.write_bytes(pem(leaves[authority][state]))
            asked = subprocess.run(
                ["openssl", "ocsp", "-issuer", str(dep.issuers[authority]), "-cert", str(leaf), "-url",
                 f"{served}/ocsp", "-CAfile", str(trust)], capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            out = asked.stdout + asked.stderr
            assert "Response verify OK" in out, (authority, state, out)
            assert re.search(rf"{authority}-{state}\.pem: {state}", out), out
    # The prefix serves its own CRL.
    assert dep.api.get("/teams/crl").data == (tmp_path / "teams.crl").read_bytes()
    # An issuer the responder does not serve (the mid CA, which issues no leaves): unauthorized (RFC 6960 2.3).
    mid = tmp_path / "mid.pem"
    mid.write_bytes(dep.chains["deep"].read_bytes().split(b"-----END CERTIFICATE-----\n", 1)[1])
    asked = subprocess.run(["openssl", "ocsp", "-issuer", str(dep.root), "-cert", str(mid), "-url", f"{served}/ocsp",
                            "-noverify"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "unauthorized" in (asked.stdout + asked.stderr).lower(), asked.stdout + asked.stderr


def test_cirrus_crl_show_for_each_authority(deployment: Deployment) -> None:
    from shared.cli.crl import run_publish

    run_publish(deployment.services)
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    for authority in ("teams", "deep"):
        run = subprocess.run([sys.executable, "-m", "shared.cli", "crl", "show", "--dir", str(deployment.dir),
                              "--authority", authority, "--json"], capture_output=True, text=True, env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["issuer"] == crt_of(deployment.issuers[authority]).subject.rfc4514_string()
    run = subprocess.run([sys.executable, "-m", "shared.cli", "crl", "show", "--dir", str(deployment.dir),
                          "--authority", "nobody"], capture_output=True, text=True, env=env)  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1 and "no authority 'nobody'" in lines[0], run.stderr


def _ask_ocsp(api: Client, leaf: x509.Certificate, issuer: x509.Certificate) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    answer = api.post("/ocsp", data=request.public_bytes(serialization.Encoding.DER),
                      headers={"Content-Type": "application/ocsp-request"})  # fmt: skip
    assert answer.status_code == 200, answer.data
    return ocsp.load_der_ocsp_response(answer.data)


def test_ocsp_without_one_authoritys_key_answers_through_its_delegated_responder(deployment: Deployment) -> None:
    """Each further authority has its own delegated responder certificate for the one responder key
    (`cirrus init` configures `ocsp.responderKey`): an `ocsp` instance without the CA key still answers."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from shared.cli.crl import run_publish

    dep = deployment
    leaves = {a: sign_and_key(dep, f"{a}-admin", f"{a}.example.com")[0] for a in ("teams", "deep")}
    run_publish(dep.services)  # holds every CA key: issues each authority's delegated certificate
    (dep.dir / "secrets" / "deep_key").unlink()  # an `ocsp` instance with no role on deep's key
    services = build_services(Settings.load(dep.dir / "config.json"))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        for authority in ("teams", "deep"):
            ca = crt_of(dep.issuers[authority])
            response = _ask_ocsp(api, leaves[authority], ca)
            assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, authority
            assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
            (responder,) = response.certificates  # the delegated certificate, issued by this authority's CA
            responder.verify_directly_issued_by(ca)
            eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
            assert responder.public_key() != ca.public_key()
            public = responder.public_key()
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(response.signature, response.tbs_response_bytes,
                          ec.ECDSA(response.signature_hash_algorithm))  # type: ignore[arg-type]  # fmt: skip
    finally:
        services.close()


def test_ocsp_without_a_responder_key_or_one_authoritys_key_still_answers_for_the_others(
    deployment: Deployment,
) -> None:
    from cryptography.x509 import ocsp

    from shared.cli.crl import run_publish

    dep = deployment
    config = json.loads((dep.dir / "config.json").read_text())
    config.pop("ocsp", None)  # no delegated responders: each CA key signs its own answers
    (dep.dir / "config.json").write_text(json.dumps(config))
    leaves = {a: sign_and_key(dep, f"{a}-admin", f"{a}.example.com")[0] for a in ("teams", "deep")}
    run_publish(dep.services)
    (dep.dir / "secrets" / "deep_key").unlink()  # an `ocsp` instance with no role on deep's key
    services = build_services(Settings.load(dep.dir / "config.json"))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        for authority, expected in (("teams", ocsp.OCSPResponseStatus.SUCCESSFUL),
                                    ("deep", ocsp.OCSPResponseStatus.UNAUTHORIZED)):  # fmt: skip
            response = _ask_ocsp(api, leaves[authority], crt_of(dep.issuers[authority]))
            assert response.response_status == expected, authority
            if expected == ocsp.OCSPResponseStatus.SUCCESSFUL:
                assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
                assert response.certificates == []  # signed by the CA itself
    finally:
        services.close()


def test_expiry_alerts_cover_every_authority(deployment: Deployment) -> None:
    import datetime as dt

    from shared.clock import FixedClock

    clock = FixedClock(dt.datetime.now(dt.UTC))
    services = build_services(Settings.load(deployment.dir / "config.json"), clock=clock)
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr, _ = make_csr("lapsing.example.com", ["lapsing.example.com"])
        answer = api.post("/sign", json={"csr": csr, "ott": token_for(deployment, "teams-admin", "lapsing.example.com")})
        assert answer.status_code == 201, answer.text
        clock.advance(dt.timedelta(hours=17))  # a 24 h certificate with 7 h left: inside its 8 h window
        assert services.expiry_alerts() == 1
    finally:
        services.close()


def test_authority_expiring_alerts_cover_every_authoritys_chain(deployment: Deployment) -> None:
    import datetime as dt

    from shared.clock import FixedClock

    clock = FixedClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=300))  # 65 days left for the 365-day CAs
    services = build_services(Settings.load(deployment.dir / "config.json"), clock=clock)
    try:
        # default, teams and deep; not the mid CA (400 days: 100 left) nor the root.
        assert services.expiry_alerts() == 3
        assert services.expiry_alerts() == 0  # once each
    finally:
        services.close()

