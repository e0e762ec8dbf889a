"""Boulder-style key checks (shared/x509/goodkey.py), one rule at a time.

Public keys are built from numbers, so a rule can be shown without a key that
signs; the API tests show the same checks applied to CSRs.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from shared.x509 import goodkey
from tests.keys_weak import close_primes_rsa_key

_GOOD_RSA = rsa.generate_private_key(65537, 2048).public_key()
_N = _GOOD_RSA.public_numbers().n


def _rsa(n: int, e: int = 65537) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(e, n).public_key()


def test_good_keys_pass() -> None:
    goodkey.check(_GOOD_RSA)
    for curve in (ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()):
        goodkey.check(ec.generate_private_key(curve).public_key())
    goodkey.check(ed25519.Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize(
    ("key", "words"),
    [
        (lambda: _rsa(_N >> 8), "at least 2048"),
        (lambda: _rsa(_N * (2**8192 + 1) | 1), "larger than 8192"),
        (lambda: _rsa((_N << 4) | 1), "multiple of 8"),
        (lambda: _rsa(_N, 3), "exponent"),
        (lambda: _rsa(_N, 65535), "exponent"),
        (lambda: _rsa(_N, 2**256 + 1), "exponent"),
        (lambda: _rsa(_N - 1), "small prime"),  # an even modulus
        (lambda: _rsa(743 * ((2**2047 // 743 + 1) | 1)), "small prime"),
        (lambda: _rsa(3 * ((2**2047 // 3 + 1) | 1)), "small prime"),
        (lambda: close_primes_rsa_key().public_key(), "Fermat"),
        (lambda: ec.generate_private_key(ec.SECP256K1()).public_key(), "not allowed"),
        (lambda: ec.generate_private_key(ec.SECP224R1()).public_key(), "not allowed"),
        (lambda: ed448.Ed448PrivateKey.generate().public_key(), "unsupported"),
        (lambda: object(), "unsupported"),
    ],
)
def test_each_rule_refuses(key, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(goodkey.BadKey, match=words):
        goodkey.check(key())


def test_fermat_is_bounded_and_finds_factors_within_its_rounds() -> None:
    """n = a^2 - b^2 with b chosen so that Fermat's search from ceil(sqrt(n)) needs ~150 steps."""
    a = 2**1024 + 12345
    b = math.isqrt(301 * a)
    n = (a - b) * (a + b)
    start = math.isqrt(n) + 1
    steps = a - start
    assert 100 < steps < 200
    assert goodkey.fermat_factorable(n) is False  # Boulder's 100 rounds: not found, and not searched further
    assert goodkey.fermat_factorable(n, rounds=steps) is False
    assert goodkey.fermat_factorable(n, rounds=steps + 1) is True
    assert goodkey.fermat_factorable(_N) is False


def test_ec_point_off_the_curve_is_refused() -> None:
    """OpenSSL refuses such a point when decoding; the check stands on its own all the same."""
    nums = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    for x, y in ((nums.x, nums.y + 1), (nums.x + goodkey._CURVES["secp256r1"][0], nums.y), (0, 0)):
        off = SimpleNamespace(
            curve=ec.SECP256R1(), public_numbers=lambda x=x, y=y: SimpleNamespace(x=x, y=y)
        )
        with pytest.raises(goodkey.BadKey, match="not on the curve"):
            goodkey.check_ec(off)  # type: ignore[arg-type]
    goodkey.check_ec(SimpleNamespace(curve=ec.SECP256R1(), public_numbers=lambda: nums))  # type: ignore[arg-type]
