"""The sprig functions step-ca users rely on, plus step's `fail`, with sprig 3's exact behaviour.

Hand-written: these are Go functions (Masterminds/sprig) with Go semantics (int64 arithmetic via
spf13/cast, Go's strings and regexp packages, encoding/json output); regular expressions use RE2
through the `google-re2` binding so patterns mean what they mean in Go.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import uuid
from typing import Any

from shared.templates.errors import TemplateError
from shared.templates.functions import Func, FuncError
from shared.templates.gofmt import go_quote
from shared.templates.gojson import to_json
from shared.templates.sprig_text import (
    b64dec,
    date,
    go_split,
    go_trim_space,
    regex_find,
    regex_match,
    regex_replace_all,
    title,
)
from shared.templates.values import (
    I64,
    MISSING,
    GoTyped,
    IntList,
    StrList,
    StrMap,
    kind_name,
    sprint_value,
    truth,
    type_name,
)

MAX_LIST = 100_000  # until/seq refuse to build more elements than this


def strval(v: Any) -> str:
    """sprig's strval: strings as-is, everything else as fmt's %v."""
    if isinstance(v, str):
        return v
    return sprint_value(None if v is MISSING else v, False)


def _strslice(v: Any) -> list[str]:
    if isinstance(v, list):
        return [strval(x) for x in v if x is not None]
    if v is None:
        return []
    return [strval(v)]


def _parse_go_int(s: str) -> int | None:
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
        if digits.startswith("_") and base == 8 and not lower.startswith("0o"):
            pass
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


def _trim_zero_decimal(s: str) -> str:
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


def _wrap64(v: int) -> int:
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
        parsed = _parse_go_int(_trim_zero_decimal(v))
        return 0 if parsed is None else parsed
    return 0


def _first(lst: Any) -> Any:
    if not isinstance(lst, list):
        raise FuncError(f"Cannot find first on type {kind_name(lst)}")
    return lst[0] if lst else None


def _last(lst: Any) -> Any:
    if not isinstance(lst, list):
        raise FuncError(f"Cannot find last on type {kind_name(lst)}")
    return lst[-1] if lst else None


def _push(lst: Any, v: Any) -> list[Any]:
    if not isinstance(lst, list):
        raise FuncError(f"Cannot push on type {kind_name(lst)}")
    return [*lst, v]


def deep_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual over template values (types must match)."""
    if type_name(a) != type_name(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _has(needle: Any, haystack: Any) -> bool:
    if haystack is None:
        return False
    if not isinstance(haystack, list):
        raise FuncError(f"Cannot find has on type {kind_name(haystack)}")
    return any(deep_equal(needle, item) for item in haystack)


def _slice(lst: Any, *indices: Any) -> Any:
    """sprig's slice (it replaces Go's builtin of the same name)."""
    if not isinstance(lst, list):
        raise FuncError(f"list should be type of slice or array but {kind_name(lst)}")
    if not lst:
        return None
    start = to_int64(indices[0]) if indices else 0
    end = to_int64(indices[1]) if len(indices) > 1 else len(lst)
    if not 0 <= start <= end <= len(lst):
        raise FuncError("reflect: slice index out of range")
    return type(lst)(lst[start:end])


def _dict(*v: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(v), 2):
        key = strval(v[i])
        out[key] = v[i + 1] if i + 1 < len(v) else ""
    return out


def _until_step(start: int, stop: int, step: int) -> list[int]:
    if abs(stop - start) // max(abs(step), 1) > MAX_LIST:
        raise FuncError(f"more than {MAX_LIST} elements")
    if stop < start:
        return list(range(start, stop, step)) if step < 0 else []
    return list(range(start, stop, step)) if step > 0 else []


def _until(count: int) -> list[int]:
    return IntList(_until_step(0, count, -1 if count < 0 else 1))


def _seq(*params: int) -> str:
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


def _div(a: Any, b: Any) -> I64:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    q = abs(x) // abs(y)
    return I64(_wrap64(q if (x >= 0) == (y >= 0) else -q))


def _mod(a: Any, b: Any) -> I64:
    x, y = to_int64(a), to_int64(b)
    if y == 0:
        raise FuncError("runtime error: integer divide by zero")
    r = abs(x) % abs(y)
    return I64(r if x >= 0 else -r)


def _mul(a: Any, *v: Any) -> I64:
    product = to_int64(a)
    for x in v:
        product = _wrap64(product * to_int64(x))
    return I64(product)


def _max(a: Any, *v: Any) -> I64:
    return I64(max([to_int64(a), *(to_int64(x) for x in v)]))


def _min(a: Any, *v: Any) -> I64:
    return I64(min([to_int64(a), *(to_int64(x) for x in v)]))


def _from_json(s: str) -> Any:
    def no_constants(_: str) -> Any:
        raise ValueError("not JSON")

    try:
        return json.loads(s, parse_int=float, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return None


def _to_json(v: Any) -> str:
    try:
        return to_json(v)
    except TemplateError:
        return ""


def _to_raw_json(v: Any) -> str:
    try:
        return to_json(v, escape_html=False)
    except TemplateError as exc:
        raise FuncError(exc.message) from None


def _fail(message: str) -> str:
    raise TemplateError(message, failed=True)


def _now() -> GoTyped:
    now = dt.datetime.now(dt.UTC)
    return GoTyped("time.Time", "struct", now.isoformat().replace("+00:00", "Z"),
                   now.strftime("%Y-%m-%d %H:%M:%S.%f +0000 UTC"))


def _quote(*v: Any) -> str:
    return " ".join(go_quote(strval(x)) for x in v if x is not None)


def _squote(*v: Any) -> str:
    return " ".join("'" + strval(x) + "'" for x in v if x is not None)


def _keys(*dicts: Any) -> list[str]:
    out = StrList()
    for d in dicts:
        if d is not None:
            out.extend(sorted(d))
    return out


def _sort_alpha(v: Any) -> list[str]:
    if isinstance(v, list):
        return StrList(sorted(_strslice(v), key=lambda s: s.encode("utf-8", "surrogateescape")))
    return StrList([strval(v)])


def _atoi(s: str) -> int:
    if not s or "_" in s or s.lstrip("+-")[:1] in ("", "+", "-"):
        return 0
    body = s[1:] if s[0] in "+-" else s
    if not body.isdigit() or not body.isascii():
        return 0
    value = int(s)
    return max(-(1 << 63), min(value, (1 << 63) - 1))


def _get(d: Any, key: str) -> Any:
    if d is not None and key in d:
        return d[key]
    return ""


def _set(d: Any, key: str, value: Any) -> Any:
    if d is None:
        raise FuncError("assignment to entry in nil map")
    d[key] = value
    return d


def _unset(d: Any, key: str) -> Any:
    if d is not None:
        d.pop(key, None)
    return d


def _pluck(name: str, *dicts: Any) -> list[Any]:
    return [d[name] for d in dicts if d is not None and name in d]


def _empty(v: Any) -> bool:
    return not truth(v)


def _default(d: Any, *given: Any) -> Any:
    if not given or _empty(given[0]):
        return d
    return given[0]


def _coalesce(*v: Any) -> Any:
    for x in v:
        if not _empty(x):
            return x
    return None


SPRIG: dict[str, Func] = {
    "toJson": Func(_to_json, ("any",)),
    "toRawJson": Func(_to_raw_json, ("any",)),
    "fromJson": Func(_from_json, ("string",)),
    "default": Func(_default, ("any",), "any"),
    "empty": Func(_empty, ("any",)),
    "coalesce": Func(_coalesce, (), "any"),
    "ternary": Func(lambda a, b, c: a if c else b, ("any", "any", "bool")),
    "lower": Func(str.lower, ("string",)),
    "upper": Func(str.upper, ("string",)),
    "title": Func(title, ("string",)),
    "trim": Func(go_trim_space, ("string",)),
    "trimAll": Func(lambda cut, s: s.strip(cut) if cut else s, ("string", "string")),
    "trimPrefix": Func(lambda p, s: s[len(p):] if s.startswith(p) else s, ("string", "string")),
    "trimSuffix": Func(lambda p, s: s[: len(s) - len(p)] if p and s.endswith(p) else s, ("string", "string")),
    "replace": Func(lambda old, new, s: s.replace(old, new), ("string", "string", "string")),
    "split": Func(lambda sep, s: StrMap({f"_{i}": part for i, part in enumerate(go_split(s, sep))}),
                  ("string", "string")),
    "splitList": Func(lambda sep, s: StrList(go_split(s, sep)), ("string", "string")),
    "join": Func(lambda sep, v: sep.join(_strslice(v)), ("string", "any")),
    "hasPrefix": Func(lambda p, s: s.startswith(p), ("string", "string")),
    "hasSuffix": Func(lambda p, s: s.endswith(p), ("string", "string")),
    "contains": Func(lambda sub, s: sub in s, ("string", "string")),
    "regexMatch": Func(regex_match, ("string", "string")),
    "regexFind": Func(regex_find, ("string", "string")),
    "regexReplaceAll": Func(regex_replace_all, ("string", "string", "string")),
    "b64enc": Func(lambda s: base64.b64encode(s.encode("utf-8", "surrogateescape")).decode(), ("string",)),
    "b64dec": Func(b64dec, ("string",)),
    "sha256sum": Func(lambda s: hashlib.sha256(s.encode("utf-8", "surrogateescape")).hexdigest(), ("string",)),
    "dict": Func(_dict, (), "any"),
    "list": Func(lambda *v: list(v), (), "any"),
    "append": Func(_push, ("any", "any")),
    "push": Func(_push, ("any", "any")),
    "first": Func(_first, ("any",)),
    "slice": Func(_slice, ("any",), "any"),
    "last": Func(_last, ("any",)),
    "has": Func(_has, ("any", "any")),
    "keys": Func(_keys, (), "map"),
    "sortAlpha": Func(_sort_alpha, ("any",)),
    "pluck": Func(_pluck, ("string",), "map"),
    "get": Func(_get, ("map", "string")),
    "set": Func(_set, ("map", "string", "any")),
    "unset": Func(_unset, ("map", "string")),
    "until": Func(_until, ("int",)),
    "seq": Func(_seq, (), "int"),
    "add": Func(lambda *v: I64(_wrap64(sum(to_int64(x) for x in v))), (), "any"),
    "add1": Func(lambda v: I64(_wrap64(to_int64(v) + 1)), ("any",)),
    "sub": Func(lambda a, b: I64(_wrap64(to_int64(a) - to_int64(b))), ("any", "any")),
    "mul": Func(_mul, ("any",), "any"),
    "div": Func(_div, ("any", "any")),
    "mod": Func(_mod, ("any", "any")),
    "max": Func(_max, ("any",), "any"),
    "min": Func(_min, ("any",), "any"),
    "toString": Func(strval, ("any",)),
    "atoi": Func(_atoi, ("string",)),
    "int": Func(lambda v: to_int64(v), ("any",)),
    "int64": Func(lambda v: I64(to_int64(v)), ("any",)),
    "typeOf": Func(type_name, ("any",)),
    "typeIs": Func(lambda t, v: t == type_name(v), ("string", "any")),
    "kindOf": Func(kind_name, ("any",)),
    "kindIs": Func(lambda t, v: t == kind_name(v), ("string", "any")),
    "now": Func(_now, ()),
    "date": Func(date, ("string", "any")),
    "uuidv4": Func(lambda: str(uuid.uuid4()), ()),
    "quote": Func(_quote, (), "any"),
    "squote": Func(_squote, (), "any"),
    "fail": Func(_fail, ("string",)),
}

__all__ = ["SPRIG", "binascii"]
