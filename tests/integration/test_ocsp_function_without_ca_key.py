"""The deployed `ocsp` function's view: a responder key it may use, a CA key it may not.

Terraform (terraform/modules/cirrus) hands the `ocsp` function CIRRUS_OCSP_KEY
and signerVerifier on the responder key only; its config.json still names the
CA key, like every function's, but the function holds no role on it, so
opening it fails (Cloud KMS answers PermissionDenied). Here the same situation
is built from a `cirrus init` authority: the publisher (the `crl_publish` view)
uses the real config; the responder gets a config whose CA key cannot be
opened. The responder must still start, answer `tryLater` until the publisher
has certified its key, and then answer with the delegated certificate, never
the CA key. Without a responder key, a CA key that cannot be opened is still
an error: the fallback is for delegation only.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.crl import run_publish
from shared.clock import FixedClock
from shared.config import Settings
from shared.errors import ConfigError
from shared.keys.base import Signer
from shared.runtime import Services, build_services
from shared.validation.wiring import ocsp_endpoint
from tests.helpers import make_csr, mint_sign_token


def _config_without_ca_key(authority_dir: Path, *, responder: bool) -> Path:
    """A config next to the real one (same store, same bucket folder) whose CA key cannot be opened."""
    raw = json.loads((authority_dir / "config.json").read_text())
    raw["key"] = "softkms:path=secrets/not_shipped_to_this_function"
    if not responder:
        raw.pop("ocsp", None)
    path = authority_dir / "config-ocsp.json"
    path.write_text(json.dumps(raw))
    return path


def _issue(services: Services, authority_dir: Path) -> x509.Certificate:
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    name = "leaf.example.internal"
    csr, _ = make_csr(name)
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name)})
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.get_json()["crt"].encode())


def _ask(services: Services, cert: x509.Certificate, ca: x509.Certificate) -> ocsp.OCSPResponse:
    endpoint = services.lazy("ocsp", ocsp_endpoint)
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, ca, hashes.SHA256()).build()
    der = request.public_bytes(serialization.Encoding.DER)
    status, headers, body = endpoint.handle_ocsp("POST", "", der)
    assert status == 200 and headers["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(body)


def test_responder_without_the_ca_key_signs_only_with_its_delegated_certificate(authority_dir: Path) -> None:
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    publisher = build_services(Settings.load(authority_dir / "config.json"), clock=clock)
    responder = build_services(
        Settings.load(_config_without_ca_key(authority_dir, responder=True)), clock=clock
    )
    try:
        ca = publisher.intermediates[0]
        leaf = _issue(publisher, authority_dir)

        # Nothing published yet: the responder starts anyway and says tryLater (no CA-signed answer).
        first = _ask(responder, leaf, ca)
        assert first.response_status == ocsp.OCSPResponseStatus.TRY_LATER

        run_publish(publisher)  # CRL, serial index, responder certificate (store and bucket)
        clock.advance(dt.timedelta(seconds=31))  # past the responder's retry while it had no certificate
        answer = _ask(responder, leaf, ca)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert len(answer.certificates) == 1
        delegated = answer.certificates[0]
        eku = delegated.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
        delegated.verify_directly_issued_by(ca)
        signer_key = delegated.public_key()
        assert isinstance(signer_key, ec.EllipticCurvePublicKey)
        assert signer_key.public_numbers() != ca.public_key().public_numbers()  # type: ignore[union-attr]
        signer_key.verify(answer.signature, answer.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
        assert responder.rotating is not None and responder.rotating.opened == []  # the CA key was never opened here
    finally:
        publisher.close()
        responder.close()


def test_a_responder_whose_delegated_certificate_answers_never_opens_the_ca_key(
    authority_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the CA key at hand too (its config names one it can open), a cold responder answers with the
    published delegated certificate and opens no CA key: on Google Cloud that would be a key-manager
    client and a GetPublicKey refused for lack of a role, paid by every cold `ocsp` instance."""
    from shared.validation import wiring

    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    publisher = build_services(Settings.load(authority_dir / "config.json"), clock=clock)
    responder = build_services(Settings.load(authority_dir / "config.json"), clock=clock, deferred=True)
    opened: list[str] = []
    real = wiring._signer

    def counting(services: Services) -> Signer:
        opened.append("responder" if services is responder else "publisher")
        return real(services)

    monkeypatch.setattr(wiring, "_signer", counting)
    try:
        leaf = _issue(publisher, authority_dir)
        run_publish(publisher)  # its CRL signer is the CA key: not the responder's
        answer = _ask(responder, leaf, publisher.intermediates[0])
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert len(answer.certificates) == 1  # the delegated certificate signed
        assert "responder" not in opened and "publisher" in opened
    finally:
        publisher.close()
        responder.close()


def test_without_a_responder_key_an_unusable_ca_key_is_still_an_error(authority_dir: Path) -> None:
    services = build_services(Settings.load(_config_without_ca_key(authority_dir, responder=False)))
    try:
        with pytest.raises(ConfigError):
            ocsp_endpoint(services)
    finally:
        services.close()
