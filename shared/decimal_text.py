"""Strict ASCII decimal numbers from client text (query values, path segments, serials).

Python's `int()` accepts any Unicode decimal digit (fullwidth, Arabic-Indic), underscores ("1_0"),
a sign and surrounding whitespace, and `str.isdigit()` is true for "²", which `int()`
then refuses with a ValueError nobody expected. The wire formats we serve (step-ca's
Go API, RFC 5280 serials, our own URLs) mean ASCII digits only, so every number a
client sends is read here: a bounded run of `0`-`9`, nothing else.
"""

from __future__ import annotations

import re

_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")


def parse_decimal(text: str, *, max_digits: int) -> int:
    """Parse 1..`max_digits` ASCII digits (no sign, no space, no underscore).

    Raises:
        ValueError: anything else.
    """
    if not 0 < len(text) <= max_digits or not _DECIMAL.fullmatch(text):
        raise ValueError("not a decimal number")
    return int(text, 10)


def parse_hex(text: str, *, max_digits: int) -> int:
    """Parse 1..`max_digits` ASCII hex digits (no prefix, sign, space or underscore).

    Raises:
        ValueError: anything else.
    """
    if not 0 < len(text) <= max_digits or not _HEX.fullmatch(text):
        raise ValueError("not a hexadecimal number")
    return int(text, 16)
