"""The delegated OCSP responder against relying parties: openssl ocsp and pkilint.

A real authority made by `cirrus init` issues a leaf through the step-ca API;
`run_publish` (the path `cirrus crl publish`, `cirrus up`'s schedule and the
`crl_publish` function share) publishes the CRL and issues the responder
certificate; the `/ocsp` route of the full app answers a request openssl
built; openssl verifies the response with only the root trusted.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.crl import run_publish
from shared.clock import FixedClock
from shared.config import Settings
from shared.runtime import Services, build_services
from shared.validation.responder_cert import COLLECTION, blob_name
from shared.validation.wiring import blobs
from tests.helpers import make_csr, mint_sign_token, mint_token, pkilint_cli_errors, sign_claims

pytestmark = pytest.mark.interop


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=60)


def _issue(api: Client, authority_dir: Path, name: str) -> x509.Certificate:
    csr, _ = make_csr(name, [name])
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name, [name])})
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.get_json()["crt"].encode())


def _ask(api: Client, tmp_path: Path, inter: Path, leaf: Path, tag: str) -> Path:
    req = _run("openssl", "ocsp", "-issuer", str(inter), "-cert", str(leaf), "-reqout", str(tmp_path / f"{tag}.req"))
    assert req.returncode == 0, req.stderr
    resp = api.post(
        "/ocsp", data=(tmp_path / f"{tag}.req").read_bytes(), headers={"Content-Type": "application/ocsp-request"}
    )
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/ocsp-response"
    out = tmp_path / f"{tag}.der"
    out.write_bytes(resp.data)
    return out


def _lint_ocsp(path: Path) -> list[dict[str, object]]:
    return pkilint_cli_errors(["lint_ocsp_response", "lint"], path)


@pytest.fixture
def clocked(authority_dir: Path) -> Iterator[tuple[Services, Client, FixedClock]]:
    """Services on a clock that starts at the wall time (openssl checks it) and moves when told."""
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    services = build_services(Settings.load(authority_dir / "config.json"), clock=clock)
    try:
        yield services, Client(CirrusApp(services, mounts=default_mounts(services))), clock
    finally:
        services.close()


def test_openssl_verifies_delegated_responder(
    clocked: tuple[Services, Client, FixedClock], authority_dir: Path, tmp_path: Path
) -> None:
    services, api, clock = clocked
    root = authority_dir / "certs" / "root_ca.crt"
    inter = authority_dir / "certs" / "intermediate_ca.crt"
    good, revoked = _issue(api, authority_dir, "good.example.com"), _issue(api, authority_dir, "bad.example.com")
    for name, cert in (("good", good), ("revoked", revoked)):
        (tmp_path / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    serial = str(revoked.serial_number)
    r = api.post(
        "/1.0/revoke",
        json={
            "serial": serial,
            "ott": mint_token(authority_dir, sign_claims(serial, None, op="revoke")),
            "passive": True,
            "reasonCode": 1,
        },
    )
    assert r.status_code == 200, r.text

    # before any publication there is no CRL: tryLater, whoever would sign
    early = ocsp.load_der_ocsp_response(_ask(api, tmp_path, inter, tmp_path / "good.pem", "early").read_bytes())
    assert early.response_status == ocsp.OCSPResponseStatus.TRY_LATER

    run_publish(services)
    clock.advance(dt.timedelta(seconds=31))  # the responder looks again for a CRL and a certificate
    stored = services.store.get_document(COLLECTION, services.settings.authority_id)
    assert stored is not None
    responder = x509.load_pem_x509_certificate(stored[0]["pem"].encode())
    mirrored = blobs(services).read(blob_name(services.settings.authority_id))  # what the ocsp function reads
    assert mirrored is not None and json.loads(mirrored.data)["serial"] == str(responder.serial_number)
    assert responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.OCSP_SIGNING]
    )

    for name, expected in (("good", "good"), ("revoked", "revoked")):
        resp_path = _ask(api, tmp_path, inter, tmp_path / f"{name}.pem", name)
        parsed = ocsp.load_der_ocsp_response(resp_path.read_bytes())
        assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert parsed.certificates == [responder]  # signed by the delegated responder, which is included
        assert (
            parsed.responder_key_hash
            == x509.SubjectKeyIdentifier.from_public_key(
                responder.public_key()  # type: ignore[arg-type]
            ).digest
        )
        out = _run(
            "openssl", "ocsp", "-respin", str(resp_path), "-issuer", str(inter), "-CAfile", str(root),
            "-cert", str(tmp_path / f"{name}.pem"), "-no_nonce",
        )  # fmt: skip
        text = out.stdout + out.stderr
        assert "Response verify OK" in text, text
        assert re.search(rf"{name}\.pem: {expected}", text), text
        assert _lint_ocsp(resp_path) == [], name
