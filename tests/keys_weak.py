"""Weak RSA keys for the goodkey tests, made once per test session.

`cryptography` refuses to generate such keys, so they are assembled from
primes: a prime from a freshly generated key, and its close neighbour from
sympy's `nextprime` (about half a second, hence the cache).
"""

from __future__ import annotations

import functools
import math

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import (
    RSAPrivateNumbers,
    RSAPublicNumbers,
    rsa_crt_dmp1,
    rsa_crt_dmq1,
    rsa_crt_iqmp,
)


def rsa_from_primes(p: int, q: int, e: int = 65537) -> rsa.RSAPrivateKey:
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = RSAPrivateNumbers(
        p, q, d, rsa_crt_dmp1(d, p), rsa_crt_dmq1(d, q), rsa_crt_iqmp(p, q), RSAPublicNumbers(e, p * q)
    )
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


@functools.cache
def close_primes_rsa_key() -> rsa.RSAPrivateKey:
    """A 2048-bit key whose primes differ by about 2^512: Fermat's method factors it in one step."""
    from sympy import nextprime  # type: ignore[import-untyped]

    while True:
        p = rsa.generate_private_key(65537, 2048).private_numbers().p
        q = int(nextprime(p + 2**512))
        if math.gcd(65537, (p - 1) * (q - 1)) == 1 and (p * q).bit_length() == 2048:
            return rsa_from_primes(p, q)
