"""The audience comparison new provisioner types call (shared/provisioners/audience.py), and the
signature-independent replay key."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.provisioners.audience import Audiences, split_audience
from shared.provisioners.tokens import token_hash
from tests.unit.api.hostile_support import malleable_twin

CA = Audiences(["ca.example.com", "[::1]", "10.0.0.1"])


@pytest.mark.parametrize(
    ("aud", "want"),
    [
        ("https://ca.example.com/1.0/sign", ("ca.example.com", "/1.0/sign", None)),
        ("HTTPS://CA.example.com:443/sign#x5c/p", ("ca.example.com", "/sign", "x5c/p")),
        ("https://[::1]:9443/1.0/renew", ("::1", "/1.0/renew", None)),
        ("https://ca.example.com:9443.evil.test/1.0/sign", None),
        ("https://ca.example.com/1.0/sign?x=1", None),
        ("https://user:pw@ca.example.com/1.0/sign", None),
        ("https://ca.example.com", None),
        ("https://ca.example.com:65536/sign", None),
        ("https://ca.example.com:0/sign", None),
        ("https://ca.%65xample.com/sign", None),
        ("https://[::1/sign", None),
        ("ftp://ca.example.com/sign", None),
    ],
)
def test_split_audience(aud: str, want: object) -> None:
    assert split_audience(aud) == want


def test_fragment_rules() -> None:
    plain, own, other = "https://ca.example.com/1.0/sign", "https://ca.example.com/1.0/sign#x5c/p", "https://ca.example.com/1.0/sign#x5c/q"
    assert CA.matches([plain], "sign") and not CA.matches([own], "sign")
    assert CA.matches([plain], "sign", fragment="x5c/p") and CA.matches([own], "sign", fragment="x5c/p")
    assert not CA.matches([other], "sign", fragment="x5c/p")
    assert not CA.matches([plain], "sign", fragment="x5c/p", fragment_required=True)
    assert CA.matches([own], "sign", fragment="x5c/p", fragment_required=True)


def test_operations_and_legacy() -> None:
    assert CA.matches(["step-certificate-authority"], "revoke")
    assert not CA.matches(["step-certificate-authority"], "renew")
    assert CA.matches(["https://10.0.0.1/ssh/sign"], "sign")
    assert not CA.matches(["https://10.0.0.1/1.0/revoke"], "sign")
    assert not CA.matches(["https://other.example.com/1.0/sign"], "sign")


def test_token_hash_ignores_the_signature() -> None:
    token = jwt.encode({"sub": "x"}, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    assert token_hash(token) == token_hash(malleable_twin(token))
    assert token_hash(token) != token_hash(jwt.encode({"sub": "y"}, "k" * 32, algorithm="HS256"))
