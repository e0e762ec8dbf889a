"""Issue 2 item 8: the authority signs through a key that exposes only `sign(data)`."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.config import Settings
from shared.keys.adapter import as_private_key
from shared.keys.softkms import SoftKMS
from shared.runtime import build_services
from shared.x509.profile import Issuer
from tests.helpers import make_csr, mint_sign_token


class SignOnly:
    """A signer with no private key object anywhere in reach: only sign() and public_key()."""

    def __init__(self, sign, public) -> None:
        self.calls = 0
        self._sign = sign
        self._public = public

    def public_key(self):
        return self._public

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self._sign(data)


def test_authority_issues_with_sign_only_signer(authority_dir: Path) -> None:
    settings = Settings.load(authority_dir / "config.json")
    soft = SoftKMS(password_file=settings.password_file).signer(settings.key).builder_key()
    assert isinstance(soft, ec.EllipticCurvePrivateKey)
    signer = SignOnly(lambda d: soft.sign(d, ec.ECDSA(hashes.SHA256())), soft.public_key())
    services = build_services(settings)
    services.authority.issuer = Issuer.of(services.intermediates[0], as_private_key(signer))
    api = Client(CirrusApp(services))
    csr, _ = make_csr("kms.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "kms.example.com")})
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    cert.verify_directly_issued_by(services.intermediates[0])
    assert signer.calls == 1
    services.close()
