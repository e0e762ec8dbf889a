"""Public-key quality checks for subscriber keys, after Boulder's `goodkey`.

A CA must not certify a key an attacker can already factor or forge for
(BR 6.1.5/6.1.6). The checks, and why each is here:

- RSA: modulus 2048..8192 bits and a multiple of 8 (BR-02); an odd public
  exponent with 2^16 < e < 2^256 (NIST SP 800-89 5.3.3); no prime factor below
  752 (Boulder's list: catches even and otherwise broken moduli in one gcd);
  not factorable by Fermat's method within `FERMAT_ROUNDS` steps, which finds
  the primes at once when they are close together (CVE-2022-26320, Boulder's
  100 rounds, a bounded cost of well under a millisecond per key).
- ECDSA: P-256, P-384 or P-521 only, and the point satisfies the curve
  equation with coordinates in range. OpenSSL already refuses off-curve points
  when it decodes a key; the check is repeated here (a few big-integer
  multiplications) so the rule does not rest on a parser's behaviour. The NIST
  curves have cofactor 1, so a point on the curve is in the prime-order group.
- Ed25519 keys are accepted as they are (every 32-byte string decodes to a key
  or fails to decode; there is nothing further to check).

Hand-written rather than taken from a library: no maintained Python package
carries these checks; `cryptography` validates only what OpenSSL must to use
a key.
"""

from __future__ import annotations

import math

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

FERMAT_ROUNDS = 100
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192


class BadKey(ValueError):
    """The key is refused; the message is safe to show to the requester."""


def _primes_below(limit: int) -> list[int]:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for i in range(2, math.isqrt(limit) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return [i for i, v in enumerate(sieve) if v]


# The product of the primes below 752 (Boulder's `smallPrimes`): one gcd with
# the modulus answers "divisible by any of them".
_SMALL_PRIMES_PRODUCT = math.prod(_primes_below(752))

# (p, a, b) of the allowed curves (SEC 2 / FIPS 186-4 D.1.2).
_CURVES: dict[str, tuple[int, int, int]] = {
    "secp256r1": (
        0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        -3,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    ),
    "secp384r1": (
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        -3,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
    ),
    "secp521r1": (
        2**521 - 1,
        -3,
        0x0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
    ),
}

# Quadratic residues modulo a few small numbers: most non-squares are ruled out
# by a table look-up before an integer square root is taken.
_SQUARES_MOD_64 = frozenset(i * i % 64 for i in range(64))
_SQUARE_FILTERS = tuple((m, frozenset(i * i % m for i in range(m))) for m in (63, 65, 11))


def _is_square(n: int) -> bool:
    if n & 63 not in _SQUARES_MOD_64:
        return False
    for m, residues in _SQUARE_FILTERS:
        if n % m not in residues:
            return False
    r = math.isqrt(n)
    return r * r == n


def fermat_factorable(n: int, rounds: int = FERMAT_ROUNDS) -> bool:
    """True if Fermat's method finds n = (a-b)(a+b) within `rounds` steps from ceil(sqrt(n))."""
    a = math.isqrt(n)
    if a * a < n:
        a += 1
    b2 = a * a - n
    for _ in range(rounds):
        if _is_square(b2):
            return True
        b2 += 2 * a + 1  # (a+1)^2 - n
        a += 1
    return False


def check_rsa(key: rsa.RSAPublicKey) -> None:
    """Raise `BadKey` unless the RSA key passes every rule in the module docstring."""
    numbers = key.public_numbers()
    n, e = numbers.n, numbers.e
    bits = n.bit_length()
    if bits < RSA_MIN_BITS:
        raise BadKey(f"rsa key must be at least {RSA_MIN_BITS} bits, got {bits}")
    if bits > RSA_MAX_BITS:
        raise BadKey(f"rsa key larger than {RSA_MAX_BITS} bits is not supported")
    if bits % 8:
        raise BadKey("rsa key size must be a multiple of 8")
    if e % 2 == 0 or e <= 1 << 16 or e >= 1 << 256:
        raise BadKey("rsa public exponent must be odd and between 2^16+1 and 2^256-1")
    if math.gcd(n, _SMALL_PRIMES_PRODUCT) != 1:
        raise BadKey("rsa modulus is divisible by a small prime")
    if fermat_factorable(n):
        raise BadKey("rsa modulus is factorable by Fermat's method (its primes are too close)")


def check_ec(key: ec.EllipticCurvePublicKey) -> None:
    """Raise `BadKey` unless the key is on an allowed curve and its point is on that curve."""
    params = _CURVES.get(key.curve.name)
    if params is None:
        raise BadKey(f"elliptic curve {key.curve.name} is not allowed")
    p, a, b = params
    numbers = key.public_numbers()
    x, y = numbers.x, numbers.y
    if not (0 <= x < p and 0 <= y < p) or (y * y - (x * x * x + a * x + b)) % p:
        raise BadKey("ecdsa public key point is not on the curve")


def check(key: object) -> None:
    """Raise `BadKey` unless `key` is an RSA, ECDSA or Ed25519 public key that passes its rules."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        check_ec(key)
    elif isinstance(key, rsa.RSAPublicKey):
        check_rsa(key)
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise BadKey("unsupported public key type")
