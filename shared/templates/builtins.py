"""Go's predefined template functions (text/template/funcs.go): comparison, index, len, slice,
print/printf/println, html, js, urlquery, not. `and`/`or` short-circuit inside the evaluator."""

from __future__ import annotations

import urllib.parse
from typing import Any

from shared.templates.functions import Func, FuncError
from shared.templates.gofmt import sprint, sprintf, sprintln
from shared.templates.values import I64, MISSING, U8, GoTyped, sprint_value, truth, type_name

_BAD_COMPARISON = "incompatible types for comparison"
_BAD_TYPE = "invalid type for comparison"


def _kind(v: Any) -> str:
    if v is None or v is MISSING:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def eq(a: Any, *others: Any) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    k1 = _kind(a)
    for b in others:
        k2 = _kind(b)
        if k1 != k2:
            if k1 != "invalid" and k2 != "invalid":
                raise FuncError(_BAD_COMPARISON)
            continue
        if k1 == "invalid":
            return True
        if k1 == "other":
            raise FuncError(f"non-comparable type {sprint_value(b, False)}: {type_name(b)}")
        if a == b:
            return True
    return False


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


def lt(a: Any, b: Any) -> bool:
    k1, k2 = _kind(a), _kind(b)
    if k1 in ("invalid", "other") or k2 in ("invalid", "other"):
        raise FuncError(_BAD_TYPE)
    if k1 != k2:
        raise FuncError(_BAD_COMPARISON)
    if k1 == "bool":
        raise FuncError(_BAD_TYPE)
    return bool(a < b)


def le(a: Any, b: Any) -> bool:
    return lt(a, b) or eq(a, b)


def gt(a: Any, b: Any) -> bool:
    return not le(a, b)


def ge(a: Any, b: Any) -> bool:
    return not lt(a, b)


def not_(a: Any) -> bool:
    return not truth(a)


def _index_arg(i: Any, cap: int) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        if i is None or i is MISSING:
            raise FuncError("cannot index slice/array with nil")
        raise FuncError(f"cannot index slice/array with type {type_name(i)}")
    if i < 0 or i > cap:
        raise FuncError(f"index out of range: {int(i)}")
    return int(i)


def index(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise FuncError("index of untyped nil")
    for i in indexes:
        if isinstance(item, str):
            data = item.encode("utf-8", "surrogateescape")
            x = _index_arg(i, len(data))
            if x >= len(data):
                raise FuncError("reflect: string index out of range")
            item = U8(data[x])
        elif isinstance(item, list):
            x = _index_arg(i, len(item))
            if x >= len(item):
                raise FuncError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, dict):
            if i is None or i is MISSING:
                raise FuncError("value is nil; should be of type string")
            if not isinstance(i, str):
                raise FuncError(f"value has type {type_name(i)}; should be string")
            item = item.get(i, "" if type_name(item) == "map[string]string" else None)
        elif item is None:
            raise FuncError("index of nil pointer")
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def slice_(item: Any, *indexes: Any) -> Any:
    if item is None or item is MISSING:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogateescape")
        size = len(data)
    elif isinstance(item, list):
        size = len(item)
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    idx = [0, size, size]
    for n, i in enumerate(indexes):
        idx[n] = _index_arg(i, size)
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    if isinstance(item, str):
        return data[idx[0]:idx[1]].decode("utf-8", "surrogateescape")
    return type(item)(item[idx[0]:idx[1]])


def length(item: Any) -> int:
    if item is MISSING or item is None:
        raise FuncError("reflect: call of reflect.Value.Type on zero Value")
    if isinstance(item, str):
        return len(item.encode("utf-8", "surrogateescape"))
    if isinstance(item, (list, dict)):
        return len(item)
    raise FuncError(f"len of type {type_name(item)}")


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is None or a is MISSING else a for a in args])


def html(*args: Any) -> str:
    s = _eval_args(args)
    out = []
    for ch in s:
        out.append({'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\x00": "\ufffd"}.get(ch, ch))
    return "".join(out)


def js(*args: Any) -> str:
    s = _eval_args(args)
    out = []
    for ch in s:
        o = ord(ch)
        if ch in "\\'\"<>&=":
            out.append({"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
                        "=": "\\u003D"}[ch])
        elif o < 0x20:
            out.append(f"\\u00{o:02X}")
        elif o >= 0x80 and not ch.isprintable():
            out.append(f"\\u{o:04X}")
        else:
            out.append(ch)
    return "".join(out)


def urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="")


def printf(fmt: str, *args: Any) -> str:
    return sprintf(fmt, list(args))


def print_(*args: Any) -> str:
    return sprint(list(args))


def println(*args: Any) -> str:
    return sprintln(list(args))


BUILTINS: dict[str, Func] = {
    "and": Func(lambda *a: None, ("value",), "value"),
    "or": Func(lambda *a: None, ("value",), "value"),
    "not": Func(not_, ("value",)),
    "eq": Func(eq, ("value",), "value"),
    "ne": Func(ne, ("value", "value")),
    "lt": Func(lt, ("value", "value")),
    "le": Func(le, ("value", "value")),
    "gt": Func(gt, ("value", "value")),
    "ge": Func(ge, ("value", "value")),
    "index": Func(index, ("value",), "value"),
    "slice": Func(slice_, ("value",), "value"),
    "len": Func(length, ("value",)),
    "html": Func(html, (), "any"),
    "js": Func(js, (), "any"),
    "urlquery": Func(urlquery, (), "any"),
    "print": Func(print_, (), "any"),
    "printf": Func(printf, ("string",), "any"),
    "println": Func(println, (), "any"),
}

__all__ = ["BUILTINS", "I64", "GoTyped"]
