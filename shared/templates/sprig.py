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
import uuid
from typing import Any

from shared.templates import sprig_numbers as numbers
from shared.templates.errors import TemplateError
from shared.templates.functions import Func, FuncError
from shared.templates.gofmt import go_quote
from shared.templates.gojson import json_string, to_json
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
    StrList,
    StrMap,
    kind_name,
    sprint_value,
    truth,
    type_name,
)


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
    start = numbers.to_int64(indices[0]) if indices else 0
    end = numbers.to_int64(indices[1]) if len(indices) > 1 else len(lst)
    if not 0 <= start <= end <= len(lst):
        raise FuncError("reflect: slice index out of range")
    return type(lst)(lst[start:end])


def _dict(*v: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(0, len(v), 2):
        key = v[i] if type(v[i]) is str else strval(v[i])
        out[key] = v[i + 1] if i + 1 < len(v) else ""
    return out


def _from_json(s: str) -> Any:
    def no_constants(_: str) -> Any:
        raise ValueError("not JSON")

    try:
        return json.loads(s, parse_int=float, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return None


def _to_json(v: Any) -> str:
    if type(v) is str:  # the usual argument (a name, a claim): one call, not three
        return json_string(v, True)
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
    "until": Func(numbers.until, ("int",)),
    "seq": Func(numbers.seq, (), "int"),
    "add": Func(numbers.add, (), "any"),
    "add1": Func(numbers.add1, ("any",)),
    "sub": Func(numbers.sub, ("any", "any")),
    "mul": Func(numbers.mul, ("any",), "any"),
    "div": Func(numbers.div, ("any", "any")),
    "mod": Func(numbers.mod, ("any", "any")),
    "max": Func(numbers.max_of, ("any",), "any"),
    "min": Func(numbers.min_of, ("any",), "any"),
    "toString": Func(strval, ("any",)),
    "atoi": Func(numbers.atoi, ("string",)),
    "int": Func(numbers.to_int64, ("any",)),
    "int64": Func(lambda v: I64(numbers.to_int64(v)), ("any",)),
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
