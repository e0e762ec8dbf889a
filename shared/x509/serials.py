"""Certificate serial numbers.

Serials are positive CSPRNG integers with 150 random bits and the 151st bit
set, so every serial has the same DER length (19 content octets), is far above
BR-01's 64-bit floor and step-ca's 128 bits, and stays below 2^159 (X509-02).
The decimal string is the key everywhere, as in step-ca.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from shared.decimal_text import parse_decimal, parse_hex

SERIAL_BITS = 150

SerialSource = Callable[[], int]


def random_serial() -> int:
    """Return a fresh random serial."""
    return (1 << SERIAL_BITS) | secrets.randbits(SERIAL_BITS)


def parse_serial(text: str) -> int:
    """Parse a serial as step-ca does: decimal, or hex with a 0x prefix.

    ASCII digits only (`shared.decimal_text`): no sign, space, underscore or other
    Unicode digits, and no more digits than a 159-bit number needs.

    Raises:
        ValueError: not a positive integer below 2^159.
    """
    if text[:2].lower() == "0x":
        value = parse_hex(text[2:], max_digits=40)
    else:
        value = parse_decimal(text, max_digits=48)
    if value <= 0 or value >= 1 << 159:
        raise ValueError("serial out of range")
    return value
