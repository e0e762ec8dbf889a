"""Go's encoding/json as templates see it (`toJson`, `toRawJson`): map keys sorted, HTML escaped by
default, float64 numbers formatted as Go formats them, Cirrus's structs by their JSON names.

Hand-written because Python's json module differs from Go's in every one of these (escaping, float
formatting, struct field names and `omitempty`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from shared.templates.errors import TemplateError
from shared.templates.values import MISSING, GoStruct, GoTyped, Lazy, format_float, truth

_JSON_PLAIN = re.compile("[^\x00-\x1f\"\\\\<>&\u2028\u2029\ud800-\udfff]*")
_JSON_PLAIN_RAW = re.compile("[^\x00-\x1f\"\\\\\u2028\u2029\ud800-\udfff]*")
_PLAIN, _PLAIN_RAW = _JSON_PLAIN.fullmatch, _JSON_PLAIN_RAW.fullmatch  # a string json_string leaves as it is


def json_string(s: str, escape_html: bool) -> str:
    """encoding/json's string encoding (Go 1.19: \\u0008 and \\u000c, HTML escaped by default)."""
    if (_JSON_PLAIN if escape_html else _JSON_PLAIN_RAW).fullmatch(s):
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or (escape_html and ch in "<>&") or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_float(f: float) -> str:
    """encoding/json's float64 encoding."""
    if math.isnan(f) or math.isinf(f):
        raise TemplateError(f"json: unsupported value: {format_float(f)}")
    a = abs(f)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = format_float(f, "e", -1)
        n = len(s)
        if n >= 4 and s[n - 4] == "e" and s[n - 3] == "-" and s[n - 2] == "0":
            s = s[: n - 2] + s[n - 1:]
        return s
    return format_float(f, "f", -1)


_JSON_KEYS: dict[tuple[str, bool], str] = {}  # a struct's JSON names, encoded once (a bounded set: Cirrus's types)


def _struct_json(v: GoStruct, escape_html: bool, depth: int) -> str:
    parts = []
    values = v.values
    for go, js, omit in v.fields:
        if js is None:
            continue
        value = values[go]
        if value is None:
            if omit:
                continue
        elif type(value) is Lazy:
            value = v.field(go)
        if omit and not truth(value):
            continue
        key = _JSON_KEYS.get((js, escape_html))
        if key is None:
            key = _JSON_KEYS[(js, escape_html)] = json_string(js, escape_html) + ":"
        if value is None:
            parts.append(key + "null")
        elif type(value) is str:
            plain = (_PLAIN if escape_html else _PLAIN_RAW)(value)
            parts.append(key + '"' + value + '"' if plain else key + json_string(value, escape_html))
        else:
            parts.append(key + to_json(value, escape_html, depth + 1))
    return "{" + ",".join(parts) + "}"


def to_json(v: Any, escape_html: bool = True, depth: int = 0) -> str:
    """json.Marshal of a value (compact, map keys sorted)."""
    kind = type(v)
    if kind is str:
        return json_string(v, escape_html)
    if depth > 500:
        raise TemplateError("json: value nested too deeply")
    if v is None or v is MISSING:
        return "null"
    if kind is GoStruct:
        return _struct_json(v, escape_html, depth)
    # Strings (most elements and values) are encoded inline: a to_json call for each was a third of
    # toJson's time over a template's lists and dicts.
    # A string with nothing to escape (nearly all) is quoted here: the check is one C call, not a
    # Python call of json_string each.
    plain = _PLAIN if escape_html else _PLAIN_RAW
    if kind is list:
        return "[" + ",".join([('"' + x + '"' if plain(x) else json_string(x, escape_html)) if type(x) is str
                               else _struct_json(x, escape_html, depth + 1) if type(x) is GoStruct and depth < 500
                               else to_json(x, escape_html, depth + 1) for x in v]) + "]"
    if kind is dict:  # before the isinstance chain: `dict`/`list` results inside toJson are common
        return "{" + ",".join([('"' + k + '":' if plain(k) else json_string(k, escape_html) + ":") + (
            ('"' + x + '"' if plain(x) else json_string(x, escape_html)) if type(x := v[k]) is str
            else to_json(x, escape_html, depth + 1)) for k in sorted(v)]) + "}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return json_float(v)
    if isinstance(v, str):
        return json_string(v, escape_html)
    if isinstance(v, list):
        return "[" + ",".join(to_json(x, escape_html, depth + 1) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json_string(k, escape_html) + ":" + to_json(v[k], escape_html, depth + 1)
                              for k in sorted(v)) + "}"
    if isinstance(v, GoTyped):
        return to_json(v.json, escape_html, depth + 1)
    if isinstance(v, GoStruct):
        return _struct_json(v, escape_html, depth)
    return "null"
