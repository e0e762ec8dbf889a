"""sprig's integer functions (`add`, `sub`, `mul`, `div`, `mod`, `max`, `min`, `until`, `seq`,
`atoi`, `int`) with Go's semantics: int64 wrap-around, truncated division, and spf13/cast's
lenient conversions (`strconv.ParseInt(s, 0, 64)` after trimming a zero decimal part).

A module of its own so `sprig.py` holds the table and the string/list/map functions.
"""

from __future__ import annotations

import math
from typing import Any

from shared.templates.functions import FuncError
from shared.templates.values import I64, MISSING, IntList

MAX_LIST = 100_000  # until/seq refuse to build more elements than this


def parse_go_int(s: str) -> int | None:
    """strconv.ParseInt(s, 0, 64)."""
    body = s
    neg = False
    if body and body[0] in "+-":
        neg = body[0] == "-"
        body = body[1:]
    if not body:
        return None
    lower = body.lower()
    base = 10
    digits = body
    if lower.startswith("0x"):
        base, digits = 16, body[2:]
    elif lower.startswith("0o"):
        base, digits = 8, body[2:]
    elif lower.startswith("0b"):
        base, digits = 2, body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, digits = 8, body[1:]
    if "_" in digits:
        if base == 10:
            return None
        if digits.endswith("_") or "__" in digits:
            return None
        digits = digits.replace("_", "")
    if not digits or not all(c in "0123456789abcdef"[:base] for c in digits.lower()):
        return None
    value = int(digits, base)
    value = -value if neg else value
    if not -(1 << 63) <= value < (1 << 63):
        return None
    return value


def trim_zero_decimal(s: str) -> str:
    found_zero = False
    for i in range(len(s), 0, -1):
        c = s[i - 1]
        if c == ".":
            if found_zero:
                return s[: i - 1]
        elif c == "0":
            found_zero = True
        else:
            return s
    return s


def wrap64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= (1 << 63) else v


def to_int64(v: Any) -> int:
    """spf13/cast ToInt64 (errors become 0)."""
    if v is None or v is MISSING:
        return 0
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v) or abs(v) >= 2**63:
            return -(1 << 63)
        return int(v)
    if isinstance(v, str):
        parsed = parse_go_int(trim_zero_decimal(v))
        return 0 if parsed is None else parsed
    return 0


def _until_step(start: int, stop: int, step: int) -> list[int]:
    if abs(stop - start) // max(abs(step), 1) > MAX_LIST:
        raise FuncError(f"more than {MAX_LIST} elements")
    if stop < start:
        return list(range(start, stop, step)) if step < 0 else []
    return list(range(start, stop, step)) if step > 0 else []


def until(count: int) -> list[int]:
    return IntList(_until_step(0, count, -1 if count < 0 else 1))


def seq(*params: int) -> str:
    inc = 1
    if len(params) == 1:
        start, end = 1, params[0]
        if end < start:
            inc = -1
        values = _until_step(start, end + inc, inc)
    elif len(params) == 2:
        start, end = params
        if end < start:
            inc = -1
        values = _until_step(start, end + inc, inc)
    elif len(params) == 3:
        start, step, end = params
        if end < start:
            inc = -1
            if step > 0:
                return ""
        values = _until_step(start, end + inc, step)
    else:
        return ""
    return " ".join(str(x) for x in values)


def div(a: Any, b: Any) -> I64:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(x) // abs(y)
    return I64(wrap64(q if (x >= 0) == (y >= 0) else -q))


def mod(a: Any, b: Any) -> I64:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    r = abs(x) % abs(y)
    return I64(r if x >= 0 else -r)


def mul(a: Any, *v: Any) -> I64:
    product = to_int64(a)
    for x in v:
        product = wrap64(product * to_int64(x))
    return I64(product)


def max_of(a: Any, *v: Any) -> I64:
    return I64(max([to_int64(a), *(to_int64(x) for x in v)]))


def min_of(a: Any, *v: Any) -> I64:
    return I64(min([to_int64(a), *(to_int64(x) for x in v)]))


def atoi(s: str) -> int:
    if not s or "_" in s or s.lstrip("+-")[:1] in ("", "+", "-"):
        return 0
    body = s[1:] if s[0] in "+-" else s
    if not body.isdigit() or not body.isascii():
        return 0
    value = int(s)
    return max(-(1 << 63), min(value, (1 << 63) - 1))


def add(*v: Any) -> I64:
    return I64(wrap64(sum(to_int64(x) for x in v)))


def add1(v: Any) -> I64:
    return I64(wrap64(to_int64(v) + 1))


def sub(a: Any, b: Any) -> I64:
    return I64(wrap64(to_int64(a) - to_int64(b)))
